"""gRPC job status (busque.v1.JobService), served through Ray Serve's gRPC proxy.

The Gateway deployment exposes methods named like the RPCs, which Ray Serve calls with the
request proto and a `grpc_context` (a `ray.serve.grpc_util.RayServegRPCContext`):

    async def GetStatus(self, request, grpc_context):
        return await grpc_jobs.get_status(self.ctx, request, grpc_context)

    async def StreamStatus(self, request, grpc_context):
        async for event in grpc_jobs.stream_status(self.ctx, request, grpc_context):
            yield event

Errors: the status code and details are set on `grpc_context`. The unary RPC then returns an
empty message (the proxy keeps a code the user set). A streaming RPC must raise after setting
them: the proxy copies the context onto the real call only when a message is yielded or the
method raises. If the stream just returned, the client would get OK.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import grpc

from busque.api.errors import ApiError
from busque.api.views import iso
from busque.grpc import busque_jobs_pb2 as pb
from busque.jobs import labels as job_labels

T = TypeVar("T")

READ_SCOPE = "jobs:read"
TERMINAL = frozenset({"succeeded", "failed", "canceled"})
MAX_JOB_ID = 100  # busque's are about 30 characters

# How often a live stream with no news re-reads the database, in case the tail missed an
# event (e.g. one committed while the tail was still starting).
RESYNC_S = 15.0

_HTTP_TO_GRPC = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}


class GrpcError(Exception):
    """Ends an RPC with a non-OK status code."""

    def __init__(self, code: grpc.StatusCode, details: str):
        # The args must rebuild the exception: Ray pickles what a replica raises.
        super().__init__(code, details)
        self.code = code
        self.details = details

    def __str__(self) -> str:
        return f"{self.code.name}: {self.details}"


def set_status(grpc_context: Any, exc: GrpcError) -> None:
    if grpc_context is not None:
        grpc_context.set_code(exc.code)
        grpc_context.set_details(exc.details)


async def unary(call: Awaitable[T], grpc_context: Any, empty: T) -> T:
    """A unary RPC's answer; on a GrpcError, its code set on the context and `empty` answered
    (the proxy keeps a code the user set)."""
    try:
        return await call
    except GrpcError as exc:
        if grpc_context is None:
            raise
        set_status(grpc_context, exc)
        return empty


async def streamed(stream: AsyncIterator[T], grpc_context: Any) -> AsyncIterator[T]:
    """A streaming RPC's messages; on a GrpcError, its code set on the context, then raised:
    raising (not returning) is what makes Serve's proxy send that code."""
    try:
        async for message in stream:
            yield message
    except GrpcError as exc:
        set_status(grpc_context, exc)
        raise


def _is_terminal(event: dict) -> bool:
    return event["type"] == "job.status" and (event.get("data") or {}).get("status") in TERMINAL


def metadata(grpc_context: Any) -> dict[str, str]:
    """The call's metadata as lower-case headers (binary `-bin` entries left out)."""
    if grpc_context is None:
        return {}
    headers: dict[str, str] = {}
    for key, value in grpc_context.invocation_metadata() or ():
        if isinstance(value, str):
            headers[key.lower()] = value
    return headers


async def authorize(ctx: Any, grpc_context: Any, scope: str = READ_SCOPE) -> Any:
    """The caller's Principal, from `x-api-key` or `authorization: Bearer` metadata."""
    try:
        principal = await ctx.auth.authenticate(metadata(grpc_context))
    except ApiError as exc:
        code = _HTTP_TO_GRPC.get(exc.status)
        if code is None:
            code = grpc.StatusCode.INTERNAL if exc.status >= 500 else grpc.StatusCode.UNKNOWN
        raise GrpcError(code, exc.message) from None
    if not principal.allows(scope):
        raise GrpcError(
            grpc.StatusCode.PERMISSION_DENIED, f"this API key lacks the {scope!r} scope"
        )
    return principal


def _job_id(request: Any) -> str:
    """The request's job id. Its length is capped: the NOT_FOUND details echo it, and details
    travel as metadata, which clients cap at 8 KiB (a longer one became RESOURCE_EXHAUSTED)."""
    job_id = request.job_id
    if not job_id:
        raise GrpcError(grpc.StatusCode.INVALID_ARGUMENT, "job_id is required")
    if len(job_id) > MAX_JOB_ID:
        raise GrpcError(
            grpc.StatusCode.INVALID_ARGUMENT, f"job_id is longer than {MAX_JOB_ID} characters"
        )
    return job_id


async def _load_job(ctx: Any, job_id: str, tenant_id: str) -> dict:
    job = await asyncio.to_thread(ctx.jobs.get, job_id, tenant_id)
    if job is None:  # also another tenant's job: never leak that it exists
        raise GrpcError(grpc.StatusCode.NOT_FOUND, f"no job {job_id!r}")
    return job


def _json(value: Any) -> str:
    return "" if value is None else json.dumps(value, separators=(",", ":"), default=str)


def job_status(job: dict) -> pb.JobStatus:
    failed = job["state"] != "succeeded"
    return pb.JobStatus(
        job_id=job["id"],
        model=job.get("model") or "",
        status=job["state"],
        progress=float(job.get("progress") or 0.0),
        attempts=int(job.get("attempt") or 0),
        error_code=(job.get("error_code") or "") if failed else "",
        error_message=(job.get("error_message") or "") if failed else "",
        result_json=_json(job.get("result")),
        created_at=iso(job.get("created_at")) or "",
        started_at=iso(job.get("started_at")) or "",
        finished_at=iso(job.get("finished_at")) or "",
    )


def job_event(event: dict) -> pb.JobEvent:
    return pb.JobEvent(
        id=int(event["id"]),
        type=event["type"],
        job_id=event["job_id"],
        attempt=int(event.get("attempt") or 0),
        created_at=iso(event.get("created_at")) or "",
        data_json=_json(event.get("data") or {}),
    )


async def _get_status(ctx: Any, request: Any, grpc_context: Any) -> pb.JobStatus:
    principal = await authorize(ctx, grpc_context)
    job_id = _job_id(request)
    wait = request.wait_seconds
    if not wait >= 0:  # also NaN
        raise GrpcError(grpc.StatusCode.INVALID_ARGUMENT, "wait_seconds must be >= 0")
    job = await _load_job(ctx, job_id, principal.tenant_id)
    wait = min(wait, float(ctx.settings.jobs.max_wait_s))
    if wait <= 0 or job["state"] in TERMINAL:
        return job_status(job)
    deadline = time.monotonic() + wait
    with await ctx.tail.job(job_id) as sub:
        # Read again after subscribing: it may have finished in between.
        job = await _load_job(ctx, job_id, principal.tenant_id)
        while job["state"] not in TERMINAL and (left := deadline - time.monotonic()) > 0:
            event = await sub.get(timeout=left)
            if event is None:
                break
            if _is_terminal(event):
                job = await _load_job(ctx, job_id, principal.tenant_id)
    return job_status(job)


async def get_status(ctx: Any, request: Any, grpc_context: Any) -> pb.JobStatus:
    """GetStatus: the job's status; long-polls up to wait_seconds (clamped to
    settings.jobs.max_wait_s) until the job is terminal."""
    return await unary(_get_status(ctx, request, grpc_context), grpc_context, pb.JobStatus())


async def _replay(ctx: Any, job_id: str, after_id: int) -> AsyncIterator[dict]:
    """The job's stored events after `after_id`, page by page."""
    while True:
        page = await asyncio.to_thread(ctx.jobs.events, job_id=job_id, after_id=after_id)
        if not page:
            return
        for event in page:
            yield event
        after_id = max(after_id, max(e["id"] for e in page))


async def _stream_status(ctx: Any, request: Any, grpc_context: Any) -> AsyncIterator[pb.JobEvent]:
    principal = await authorize(ctx, grpc_context)
    after = int(request.last_event_id)
    if after < 0:
        raise GrpcError(grpc.StatusCode.INVALID_ARGUMENT, "last_event_id must be >= 0")
    try:
        wanted = job_labels.check(dict(request.labels))
    except job_labels.InvalidLabels as exc:
        raise GrpcError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
    if wanted and not request.job_id:
        async for event in _stream_labels(ctx, principal.tenant_id, wanted, after):
            yield event
        return
    job_id = _job_id(request)

    # Subscribe before reading the past, so nothing falls between replay and live.
    with await ctx.tail.job(job_id) as sub:
        # The state read after subscribing: if terminal, every event is already stored.
        job = await _load_job(ctx, job_id, principal.tenant_id)
        if not job_labels.matches(job["labels"], wanted):
            raise GrpcError(grpc.StatusCode.NOT_FOUND, f"no job {job_id!r} with those labels")
        sent: set[int] = set()
        cursor = after

        async def candidates() -> AsyncIterator[dict]:
            """The stored past, then live events; when quiet for a while, the database again
            (in case the tail missed one). May repeat events: the loop below skips those."""
            async for stored in _replay(ctx, job_id, after):
                yield stored
            if job["state"] in TERMINAL:
                return
            while True:
                event = await sub.get(timeout=RESYNC_S)
                if event is not None:
                    yield event
                    continue
                async for stored in _replay(ctx, job_id, cursor):
                    yield stored

        async for event in candidates():
            if event["id"] <= after or event["id"] in sent:
                continue
            sent.add(event["id"])
            cursor = max(cursor, event["id"])
            yield job_event(event)
            if _is_terminal(event):
                return


async def _stream_labels(
    ctx: Any, tenant_id: str, wanted: dict[str, str], after: int
) -> AsyncIterator[pb.JobEvent]:
    """Every event of the tenant's jobs with these labels: those after `after` (when above 0),
    then live ones, until the client leaves."""

    def keep(event: dict) -> bool:
        return event["tenant_id"] == tenant_id and job_labels.matches(event["labels"], wanted)

    with await ctx.tail.subscribe(keep) as sub:
        sent = after
        while after and (
            page := await asyncio.to_thread(ctx.jobs.events, tenant_id=tenant_id, after_id=sent)
        ):
            for event in page:
                sent = event["id"]
                if keep(event):
                    yield job_event(event)
        while True:
            event = await sub.get(timeout=RESYNC_S)
            if event is not None and event["id"] > sent:
                sent = event["id"]
                yield job_event(event)


async def stream_status(ctx: Any, request: Any, grpc_context: Any) -> AsyncIterator[pb.JobEvent]:
    """StreamStatus: replays the job's events after last_event_id, then streams live ones;
    ends after the terminal job.status event (right after the replay if already terminal)."""
    async for event in streamed(_stream_status(ctx, request, grpc_context), grpc_context):
        yield event


__all__ = [
    "READ_SCOPE",
    "GrpcError",
    "authorize",
    "get_status",
    "job_event",
    "job_status",
    "metadata",
    "set_status",
    "stream_status",
    "streamed",
    "unary",
]
