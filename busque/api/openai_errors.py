"""Errors in OpenAI's shape on the OpenAI-compatible routes (`/v1/chat/completions`,
`/v1/embeddings`), so OpenAI clients show them: `{"error": {"message", "type", "param", "code"}}`.

Every other route keeps busque's envelope (busque.api.errors). The routes raise busque's
`ApiError` as everywhere else; `OpenAIRoute` answers it (and any unexpected exception) in
OpenAI's shape, with `param` from `details["param"]`. The refusals that happen before a route
runs (busque.api.tenant_gate: no key, rate limits; busque.api.limits: body size and time) use
`error_body` for these paths too, so a 401 is OpenAI-shaped here (`code: invalid_api_key`, as
OpenAI answers) and busque-shaped elsewhere.

OpenAI answers invalid requests with 400 (never 422): so does busque on these routes.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from busque.api.errors import ApiError, unexpected_error
from busque.api.strict_json import StrictJsonRoute

PATHS = ("/v1/chat/completions", "/v1/embeddings")


def is_openai_path(path: str) -> bool:
    return path.rstrip("/") in PATHS


def error_type(status: int) -> str:
    if status == 401:
        return "invalid_request_error"  # OpenAI's type for a wrong key (code invalid_api_key)
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def error_body(status: int, code: str | None, message: str, param: str | None = None) -> dict:
    if status == 401:
        code = "invalid_api_key"
    return {"error": {"message": message, "type": error_type(status), "param": param, "code": code}}


def refuse(param: str | None, message: str, code: str = "invalid_value", status: int = 400):
    """An ApiError that names the request field at fault (OpenAI's `param`)."""
    return ApiError(status, code, message, {"param": param})


_UNION_TAGS = {"str", "int", "float", "bool", "list", "dict", "none"}


def param_path(loc: tuple | list) -> str:
    """A pydantic error location as OpenAI names fields: `messages[0].content`."""
    path = ""
    for part in loc:
        if isinstance(part, str) and (part in _UNION_TAGS or "[" in part):
            continue  # pydantic names the union member it tried: not a field
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def validation_error(exc) -> ApiError:
    """A pydantic ValidationError (of a request body) as OpenAI's 400, naming the first field."""
    first = exc.errors()[0]
    param = param_path(first.get("loc", ())) or None
    if first["type"] == "extra_forbidden":
        return refuse(
            param, f"Unrecognized request argument supplied: {param}", "unknown_parameter"
        )
    message = f"Invalid value for '{param}': {first['msg']}" if param else first["msg"]
    return refuse(param, message)


class OpenAIError(BaseModel):
    message: str
    type: str = Field(
        description="invalid_request_error | permission_error | rate_limit_error | server_error"
    )
    param: str | None = Field(description="the request field at fault, e.g. `messages[0].role`")
    code: str | None = Field(description="a stable code, e.g. unsupported_parameter")


class OpenAIErrorResponse(BaseModel):
    error: OpenAIError


_DESCRIPTIONS = {
    400: "Invalid or unsupported request (`param` names the field)",
    401: "No valid API key (`code: invalid_api_key`)",
    403: "The API key lacks the scope this route needs",
    404: "No such model for this endpoint (`code: model_not_found`)",
    408: "The request body did not arrive in time",
    413: "The request body is too large",
    415: "The body is not application/json",
    429: "Rate or concurrency limit; retry after `Retry-After` seconds",
    500: "An unexpected error",
    503: "The model or a store is unavailable now; retry after `Retry-After` seconds",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": OpenAIErrorResponse, "description": description}
    for status, description in _DESCRIPTIONS.items()
}


def answer(exc: ApiError) -> JSONResponse:
    body = error_body(exc.status, exc.code, exc.message, exc.details.get("param"))
    return JSONResponse(body, exc.status, headers=exc.headers)


class OpenAIRoute(StrictJsonRoute):
    """A route whose errors, its dependencies' included (the key's scope), are OpenAI-shaped."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def openai_handler(request: Request):
            try:
                return await handler(request)
            except ApiError as exc:
                return answer(exc)
            except HTTPException as exc:
                if exc.status_code in (408, 413):  # the body limits: their middleware answers
                    raise
                return answer(ApiError(exc.status_code, None, str(exc.detail)))
            except Exception as exc:
                return answer(unexpected_error(request, exc))

        return openai_handler
