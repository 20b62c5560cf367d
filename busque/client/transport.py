"""What the sync and async clients share about sending: a request as plain data (Call), how it
becomes an httpx.Request, and when a failed attempt is sent again (RetryPolicy)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import httpx

from busque.client.config import Config
from busque.client.errors import ConnectionFailed, from_response, retry_after

USER_AGENT = "busque-client/0.1"


@dataclass
class Call:
    """One HTTP request of the API. `safe`: sending it twice does no harm (a read, a PUT, a
    DELETE, a POST carrying an Idempotency-Key), so it is sent again after a connection that
    broke once the request had gone out. `auth=False`: a presigned URL, which is its own
    credential (the API key never goes to it)."""

    method: str
    path: str
    params: dict[str, Any] | list[tuple[str, Any]] | None = None
    json: Any = None
    content: bytes | None = None
    files: dict[str, Any] | None = None
    data: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None
    safe: bool | None = None
    auth: bool = True

    @property
    def is_safe(self) -> bool:
        if self.safe is not None:
            return self.safe
        return self.method in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS") or (
            "Idempotency-Key" in self.headers
        )


def build(http: httpx.Client | httpx.AsyncClient, config: Config, call: Call) -> httpx.Request:
    headers = {"User-Agent": USER_AGENT, **call.headers}
    if call.auth and config.api_key:
        headers["X-API-Key"] = config.api_key
    url = (
        call.path if call.path.startswith(("http://", "https://")) else config.base_url + call.path
    )
    extra = {"timeout": call.timeout} if call.timeout is not None else {}
    return http.build_request(
        call.method,
        url,
        params=call.params,
        json=call.json,
        content=call.content,
        files=call.files,
        data=call.data,
        headers=headers,
        **extra,
    )


def clean_params(params: dict[str, Any]) -> list[tuple[str, Any]]:
    """Query parameters without the unset ones; a list value repeats its name; bools as
    true/false."""
    out: list[tuple[str, Any]] = []
    for name, value in params.items():
        for item in value if isinstance(value, list | tuple) else [value]:
            if item is None:
                continue
            out.append((name, str(item).lower() if isinstance(item, bool) else item))
    return out


RETRY_STATUSES = (429, 503)


@dataclass
class RetryPolicy:
    """Connection failures before anything was sent, and 429/503 answers (the server did not
    act on the request), are retried for every call; a connection that broke after the request
    went out only for safe calls. Delays: the server's Retry-After, else exponential backoff
    with jitter, capped at max_delay_s."""

    max_retries: int = 5
    backoff_s: float = 0.25
    max_delay_s: float = 10.0

    def delay(self, call: Call, attempt: int, outcome: httpx.Response | Exception) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None: give up (raise or return)."""
        if attempt >= self.max_retries:
            return None
        if isinstance(outcome, httpx.Response):
            if outcome.status_code not in RETRY_STATUSES:
                return None
            told = retry_after(outcome.headers)
            if told is not None:
                return min(told, self.max_delay_s)
        elif isinstance(outcome, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
            pass  # nothing reached the server
        elif not (isinstance(outcome, httpx.TransportError) and call.is_safe):
            return None
        return self.backoff(attempt)

    def backoff(self, attempt: int) -> float:
        base = min(self.max_delay_s, self.backoff_s * 2**attempt)
        return base * (0.5 + random.random() / 2)

    def after(self, call: Call, attempt: int, outcome: httpx.Response | Exception) -> float:
        """Seconds to wait before sending `call` again after this failed attempt; the error
        (BusqueError for an answer, ConnectionFailed for a broken connection) when it is
        not sent again."""
        delay = self.delay(call, attempt, outcome)
        if delay is not None:
            return delay
        if isinstance(outcome, httpx.Response):
            raise from_response(outcome)
        raise ConnectionFailed(f"{call.method} {call.path}: {outcome!r}") from outcome
