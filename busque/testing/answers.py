"""The answers the tests' HTTP clients receive, and their check against `/openapi.json`: every
status a route really answers must be documented for it, with the content type and the schema its
body validates against."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import httpx
from jsonschema import Draft202012Validator

MAX_KEPT_BYTES = 1_000_000
KEPT_TYPES = ("application/json", "text/event-stream")


@dataclass
class Answer:
    method: str
    path: str
    status: int
    content_type: str
    response: httpx.Response | None  # kept for JSON and SSE bodies, read (or not) by the caller


class AnswerLog:
    """An httpx response hook that keeps what came back (`App.client` installs it while
    `enabled`)."""

    def __init__(self):
        self.enabled = False
        self.answers: list[Answer] = []

    def hook(self, response: httpx.Response) -> None:
        content_type = response.headers.get("content-type", "").split(";")[0].strip()
        size = response.headers.get("content-length", "0")
        # Bodies are kept (to be checked) unless large: a suite's 10 MB job lists add up.
        small = not size.isdigit() or int(size) <= MAX_KEPT_BYTES
        keep = response if content_type in KEPT_TYPES and small else None
        request = response.request
        self.answers.append(
            Answer(request.method, request.url.path, response.status_code, content_type, keep)
        )


LOG = AnswerLog()


class Contract:
    """An OpenAPI 3.1 document, asked whether an answer is what it documents."""

    def __init__(self, spec: dict):
        self.spec = spec
        self.routes = [
            (method.upper(), _template(path), path, operation)
            for path, operations in spec["paths"].items()
            for method, operation in operations.items()
        ]

    def operation(self, method: str, path: str) -> tuple[str, dict] | None:
        """(path template, operation) of a request; the most literal template wins
        (`/v1/media/sync` over `/v1/media/{media_id}`)."""
        found = [
            (template, operation)
            for m, pattern, template, operation in self.routes
            if m == method and pattern.fullmatch(path)
        ]
        found.sort(key=lambda item: item[0].count("{"))
        return found[0] if found else None

    def problems(self, answer: Answer) -> list[str]:
        """What is wrong with an answer (nothing: it is what /openapi.json says)."""
        found = self.operation(answer.method, answer.path)
        where = f"{answer.method} {answer.path} -> {answer.status}"
        if found is None:
            return []  # not a documented route (the web app's pages, presigned object URLs)
        template, operation = found
        responses = operation.get("responses", {})
        documented = responses.get(str(answer.status)) or responses.get(f"{answer.status // 100}XX")
        if documented is None:
            return [f"{where}: status not documented for {template}"]
        content = documented.get("content", {})
        if not content:
            body = answer.response.content if answer.response is not None else b""
            return [f"{where}: documented without a body, answered one"] if body else []
        if answer.content_type not in content:
            return [f"{where}: {answer.content_type!r} answered, {sorted(content)} documented"]
        if answer.response is None:
            return []
        try:
            text = answer.response.text
        except httpx.ResponseNotRead:
            return []  # streamed (read line by line, not kept)
        documented = content[answer.content_type]
        if answer.content_type == "text/event-stream":
            schema, bodies = documented.get("x-data", {}), _event_data(text)
        else:
            schema, bodies = documented.get("schema", {}), [json.loads(text)]
        validator = self.validator(schema)
        return [
            f"{where}: {'/'.join(map(str, error.absolute_path)) or 'body'}: {error.message[:300]}"
            for body in bodies
            for error in validator.iter_errors(body)
        ][:3]

    def validator(self, schema: dict) -> Draft202012Validator:
        # `#/components/...` references resolve against a root that holds the components.
        return Draft202012Validator({**schema, "components": self.spec.get("components", {})})


def _event_data(text: str) -> list:
    """The JSON of each `data:` line of a server-sent event stream (not OpenAI's `[DONE]`)."""
    lines = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
    return [json.loads(line) for line in lines if line != "[DONE]"]


def _template(path: str) -> re.Pattern:
    parts = re.split(r"(\{[^}]+\})", path)
    pattern = "".join(
        (".+" if part.endswith(":path}") else "[^/]+") if part.startswith("{") else re.escape(part)
        for part in parts
    )
    return re.compile(pattern)


def summary(problems: list[str], limit: int = 40) -> str:
    unique = sorted(set(problems))
    return "\n".join(unique[:limit]) + (
        f"\n... {len(unique) - limit} more" if len(unique) > limit else ""
    )
