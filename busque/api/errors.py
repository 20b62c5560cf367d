"""The error envelope: {"error": {"code", "message", "details"}} with the right status code."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from busque.db.engine import database_unavailable
from busque.jobs.store import TooManyJobs
from busque.storage import storage_unavailable

if TYPE_CHECKING:
    from busque.media.decode import MediaError

logger = logging.getLogger("busque.api")

RETRY_AFTER_S = 5  # what busque asks a client to wait after a 429 or 503

STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    503: "service_unavailable",
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or {}
        self.headers = headers


def envelope(code: str, message: str, details: dict[str, Any] | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, f"{what}_not_found", f"no {what} {ident!r}")


def media_error(exc: MediaError) -> ApiError:
    """An image or video that busque cannot take (busque.media.decode) as its API error."""
    return ApiError(exc.status, exc.code, str(exc))


def invalid(exc, code: str, message: str) -> ApiError:
    """A pydantic ValidationError as a 422 with the errors in details."""
    return ApiError(422, code, message, {"errors": _jsonable_errors(exc.errors())})


def _jsonable_errors(errors: list[dict]) -> list[dict]:
    return [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg")), "type": str(e.get("type"))}
        for e in errors
    ]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return JSONResponse(
            envelope(exc.code, exc.message, exc.details), exc.status, headers=exc.headers
        )

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException):
        code = STATUS_CODES.get(exc.status_code, "error")
        return JSONResponse(
            envelope(code, str(exc.detail), getattr(exc, "details", None)),
            exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(TooManyJobs)
    async def _too_many_jobs(request: Request, exc: TooManyJobs):
        return JSONResponse(
            envelope("too_many_jobs", str(exc), {"limit": exc.limit}),
            429,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = _jsonable_errors(exc.errors())
        reasons = [
            e.get("ctx", {}).get("error") for e in exc.errors() if e["type"] == "json_invalid"
        ]
        if reasons:
            message = f"the request body is not valid JSON: {reasons[0]}"
            return JSONResponse(envelope("invalid_json", message, {"errors": errors}), 400)
        return JSONResponse(
            envelope(
                "invalid_request", "the request does not match the schema", {"errors": errors}
            ),
            422,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        error = unexpected_error(request, exc)
        return JSONResponse(
            envelope(error.code, error.message), error.status, headers=error.headers
        )


def unexpected_error(request: Request, exc: Exception) -> ApiError:
    """What an exception no route answered means to the client (logged here): a 503 it may
    retry when the database or the object store is out of reach, else a 500."""
    if outage := outage_of(exc):
        code, message = outage
        logger.warning("%s on %s %s: %s", code, request.method, request.url.path, exc)
        return ApiError(503, code, message, headers={"Retry-After": str(RETRY_AFTER_S)})
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return ApiError(500, "internal_error", "an unexpected error happened")


def outage_of(exc: BaseException) -> tuple[str, str] | None:
    """(code, message) when `exc`, or what caused it, is the database or the object store
    being out of reach: a 503 the client may retry, not a 500."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if database_unavailable(cause):
            return "database_unavailable", "the database cannot be reached now; retry later"
        if storage_unavailable(cause):
            return "storage_unavailable", "the object store cannot be reached now; retry later"
        cause = cause.__cause__ or cause.__context__
    return None
