"""The client's exceptions. An error answer of busque (`{"error": {"code", "message",
"details"}}`) becomes a BusqueError (a subclass per status) carrying `status`, `code`,
`message` and `details`; a job that ends badly is a JobFailed or JobCanceled."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from busque.client.types import Job


class BusqueError(Exception):
    """An error answer of busque (or a failure to reach it: see ConnectionFailed)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details or {}
        self.headers = headers or {}

    def __str__(self) -> str:
        where = " ".join(str(p) for p in (self.status, self.code) if p is not None)
        return f"[{where}] {self.message}" if where else self.message


class BadRequest(BusqueError):
    """400: a malformed request (invalid JSON, a cursor the server did not write)."""


class Unauthorized(BusqueError):
    """401: no key, or an invalid or revoked one."""


class Forbidden(BusqueError):
    """403: the key lacks the scope."""


class NotFound(BusqueError):
    """404: no such object (or another tenant's)."""


class Conflict(BusqueError):
    """409: e.g. cancelling a finished job, an Idempotency-Key reused for another request."""


class PayloadTooLarge(BusqueError):
    """413."""


class UnsupportedMediaType(BusqueError):
    """415."""


class InvalidRequest(BusqueError):
    """422: the request does not fit the schema; `details["errors"]` says where."""


class RateLimited(BusqueError):
    """429 (after the client's own retries): `retry_after` seconds, if the server said."""

    @property
    def retry_after(self) -> float | None:
        return retry_after(self.headers)


class ServiceUnavailable(BusqueError):
    """503 (after the client's own retries): the database or object store is out of reach."""


class ServerError(BusqueError):
    """Another 5xx."""


class ConnectionFailed(BusqueError):
    """busque could not be reached (after the client's own retries)."""


class JobFailed(BusqueError):
    """A job the caller waited for ended `failed`; `job` is it, `code` its error code."""

    def __init__(self, job: Job):
        error = job.error or {}
        super().__init__(
            error.get("message") or f"job {job.id} failed",
            code=error.get("code") or "job_failed",
            details={"job_id": job.id},
        )
        self.job = job


class JobCanceled(JobFailed):
    """A job the caller waited for was canceled."""


class WaitTimeout(BusqueError):
    """A job did not finish within the time the caller gave; `job` is it as last seen."""

    def __init__(self, job: Job, timeout: float):
        super().__init__(
            f"job {job.id} is still {job.status} after {timeout:g} s", code="wait_timeout"
        )
        self.job = job


class WebhookVerificationError(Exception):
    """A webhook request failed its signature or timestamp check: do not trust it."""


BY_STATUS: dict[int, type[BusqueError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: InvalidRequest,
    429: RateLimited,
    503: ServiceUnavailable,
}


def retry_after(headers) -> float | None:
    """Retry-After in seconds (busque sends seconds; an HTTP date is not honoured)."""
    value = (headers or {}).get("retry-after") or (headers or {}).get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def from_response(response: httpx.Response) -> BusqueError:
    """The exception for an error answer: busque's envelope read when there is one."""
    status = response.status_code
    code, message, details = None, None, {}
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code, message = error.get("code"), error.get("message")
        details = error.get("details") if isinstance(error.get("details"), dict) else {}
    if message is None:
        message = (response.text or response.reason_phrase or "error")[:500]
    cls = BY_STATUS.get(status) or (ServerError if status >= 500 else BusqueError)
    return cls(message, status=status, code=code, details=details, headers=dict(response.headers))
