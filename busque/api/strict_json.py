"""JSON as busque accepts it: stricter than Python's `json`, which takes NaN and Infinity, lone
UTF-16 surrogates ("\\ud800") and any nesting. Such values were stored, then failed every
response that carried them (Starlette's JSON encoder refuses them) and PostgreSQL refuses NUL
in text; deep nesting overflowed the parser's recursion; a key given twice kept the last value
silently. `loads` refuses all of that with
`json.JSONDecodeError`, which FastAPI and busque's handlers answer with 400 `invalid_json`.
`StrictJsonRoute` makes every FastAPI body (`request.json()`) go through it, and answers a body
of another content type, sent to a route that takes JSON, with 415."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request, params
from fastapi.routing import APIRoute

from busque.api.errors import ApiError

MAX_DEPTH = 32


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):  # which value was meant? Python's json keeps the last silently
        seen: set[str] = set()
        duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"duplicate key {duplicate!r} in an object")
    return found


def loads(data: bytes | str) -> Any:
    """Parse JSON; raise json.JSONDecodeError (with a reason) for what busque does not take."""
    doc = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    try:
        value = json.loads(data, parse_constant=_refuse_constant, object_pairs_hook=_object)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise json.JSONDecodeError(f"nested deeper than {MAX_DEPTH} levels", doc, 0) from None
    except ValueError as exc:  # parse_constant's, or bytes that are not UTF-8
        raise json.JSONDecodeError(str(exc), doc, 0) from None
    problem = _problem(value, 0)
    if problem:
        raise json.JSONDecodeError(problem, doc, 0)
    return value


def _problem(value: Any, depth: int) -> str | None:
    if isinstance(value, str):
        return _string_problem(value)
    if isinstance(value, float):
        return None if value - value == 0 else "NaN and Infinity are not JSON numbers"
    if isinstance(value, (dict, list)):
        if depth >= MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH} levels"
        if isinstance(value, dict):
            for key, item in value.items():
                problem = _string_problem(key) or _problem(item, depth + 1)
                if problem:
                    return problem
        else:
            for item in value:
                problem = _problem(item, depth + 1)
                if problem:
                    return problem
    return None


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "strings may not contain NUL (\\u0000)"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "strings must be valid Unicode (a lone surrogate such as \\ud800 is not)"
    return None


class StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


class StrictJsonRoute(APIRoute):
    """An APIRoute whose handlers see a StrictJsonRequest (FastAPI's documented way to change
    how a request body is read)."""

    def get_route_handler(self):
        handler = super().get_route_handler()
        takes_json = self.body_field is not None and not isinstance(
            self.body_field.field_info, params.Form
        )

        async def strict_handler(request: Request):
            headers = request.headers
            if (
                takes_json
                and headers.get("content-length") != "0"
                and not json_or_absent(headers.get("content-type"))
            ):
                # FastAPI would validate the raw bytes and answer "not a valid dictionary"
                raise ApiError(415, "unsupported_media_type", "send the body as application/json")
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict_handler


def json_or_absent(content_type: str | None) -> bool:
    """A JSON media type (application/json, application/*+json), or none."""
    if not content_type:
        return True  # FastAPI reads a body without a type as JSON
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )
