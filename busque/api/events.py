"""Live job events: SSE per job and per tenant (resumable with Last-Event-ID) and a WebSocket.

Each stream subscribes to the in-process event tail *before* replaying the past from the
database, then skips live events it has already sent: nothing falls between replay and live.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from busque.api import strict_json
from busque.api.auth import require
from busque.api.errors import ApiError, not_found
from busque.api.job_requests import label_filter
from busque.api.schemas.common import errors, event_stream
from busque.api.schemas.jobs import Event
from busque.api.strict_json import StrictJsonRoute
from busque.api.views import event_view
from busque.api.ws_dialects import BusquePetDialect
from busque.auth.keys import Principal
from busque.jobs import labels as job_labels
from busque.jobs.store import TERMINAL

router = APIRouter(prefix="/v1", tags=["events"], route_class=StrictJsonRoute)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
MAX_EVENT_ID = 2**63 - 1  # event ids are 64-bit signed integers in the database
MAX_WS_JOBS = 1000  # jobs one WebSocket connection may follow at a time
MAX_WS_LABEL_SETS = 100  # label sets it may follow
EVENT_TYPES = {
    "job.status": "`data.status`: queued, running, succeeded, failed (with `error`), canceled",
    "job.progress": "`data.progress` from 0 to 1",
    "job.output": "`data.chunk`: streamed output (text tokens, previews)",
    "job.result": "`data.result`: the result, just before the succeeded status",
}


def _is_terminal(event: dict) -> bool:
    return event["type"] == "job.status" and event["data"].get("status") in TERMINAL


def _sse(event: dict) -> str:
    return f"id: {event['id']}\nevent: {event['type']}\ndata: {json.dumps(event_view(event))}\n\n"


def _valid_event_id(value) -> bool:
    return type(value) is int and 0 <= value <= MAX_EVENT_ID  # bool is not an id


def _resume_from(last_event_id: str | None) -> int:
    if last_event_id in (None, ""):
        return 0
    # int() would also take "1_000", " 1", "+1" and non-ASCII digits such as "١٢".
    if not (last_event_id.isascii() and last_event_id.isdigit()):
        raise ApiError(
            422, "invalid_request", "Last-Event-ID and after must be an event id (digits)"
        )
    # The length first: int() refuses more than 4300 digits with a ValueError.
    if len(last_event_id.lstrip("0")) > 19 or int(last_event_id) > MAX_EVENT_ID:
        raise ApiError(422, "invalid_request", f"Last-Event-ID and after must be <= {MAX_EVENT_ID}")
    return int(last_event_id)


def _ws_error(code: str, message: str) -> dict:
    return {"type": "error", "error": {"code": code, "message": message}}


async def _stream(
    ctx,
    sub,
    replay,
    after: int,
    stop_at_terminal: bool,
    finished: bool = False,
    keep: Callable[[dict], bool] | None = None,
    announce: bool = False,
) -> AsyncIterator[str]:
    """`finished`: the job was terminal before the replay, so nothing can follow what it
    replays (a client resuming after the terminal event gets an empty stream that ends).
    `keep`: which replayed events to send (the live ones are the subscription's).
    `announce`: first a message with only the id `after`; SSE clients take it as their
    Last-Event-ID (and dispatch no event), so one that drops before the first event resumes
    from there, missing nothing."""
    keepalive = ctx.settings.events.keepalive_s
    with sub:
        if announce:
            yield f"id: {after}\n\n"
        sent = after
        # The store answers a page at a time: read until a page comes back empty.
        while page := await asyncio.to_thread(replay, sent):
            for event in page:
                sent = event["id"]
                if keep is not None and not keep(event):
                    continue
                yield _sse(event)
                if stop_at_terminal and _is_terminal(event):
                    return
        if finished:
            return
        while True:
            event = await sub.get(timeout=keepalive)
            if event is None:
                yield ": keepalive\n\n"
                continue
            if event["id"] <= sent:
                continue
            sent = event["id"]
            yield _sse(event)
            if stop_at_terminal and _is_terminal(event):
                return


@router.get(
    "/jobs/{job_id}/events",
    response_class=StreamingResponse,
    summary="Server-sent events of one job; ends when it ends",
    responses={
        **event_stream(
            "The job's events from the first (or after Last-Event-ID)", Event, EVENT_TYPES
        ),
        **errors(404),
    },
)
async def job_events(
    job_id: str,
    request: Request,
    last_event_id: str | None = Header(None),
    after: str | None = Query(None, description="the same as Last-Event-ID"),
    principal: Principal = Depends(require("jobs:read")),
):
    ctx = request.app.state.ctx
    job = await asyncio.to_thread(ctx.jobs.get, job_id, principal.tenant_id)
    if job is None:
        raise not_found("job", job_id)
    start = _resume_from(last_event_id or after)
    # Read before the replay: a terminal state is final and its event is already stored.
    finished = job["state"] in TERMINAL
    ctx.streams.take(principal.tenant_id)
    sub = await ctx.tail.job(job_id)

    def replay(after_id: int) -> list[dict]:
        return ctx.jobs.events(job_id=job_id, after_id=after_id)

    stream = _stream(ctx, sub, replay, start, stop_at_terminal=True, finished=finished)
    return StreamingResponse(
        ctx.streams.held(principal.tenant_id, stream),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )


@router.get(
    "/events",
    response_class=StreamingResponse,
    summary="Server-sent events of all the tenant's jobs",
    responses=event_stream(
        "Every job's events from now (or after Last-Event-ID); the stream stays open. Without "
        "Last-Event-ID it opens with a message that has only an `id:`, the point to resume from",
        Event,
        EVENT_TYPES,
    ),
)
async def tenant_events(
    request: Request,
    last_event_id: str | None = Header(None),
    after: str | None = Query(None, description="the same as Last-Event-ID"),
    label: Annotated[
        list[str] | None, Query(description="key=value: only jobs with all these labels")
    ] = None,
    principal: Principal = Depends(require("jobs:read")),
):
    ctx = request.app.state.ctx
    wanted = label_filter(label)
    resume = last_event_id or after
    start = None if resume is None else _resume_from(resume)
    ctx.streams.take(principal.tenant_id)
    tenant = principal.tenant_id

    def keep(event: dict) -> bool:
        return job_labels.matches(event["labels"], wanted)

    sub = await ctx.tail.subscribe(lambda e: e["tenant_id"] == tenant and keep(e))
    announce = start is None
    if start is None:  # no resume point: from now on
        start = await asyncio.to_thread(ctx.jobs.last_event_id, principal.tenant_id)

    def replay(after_id: int) -> list[dict]:
        return ctx.jobs.events(tenant_id=principal.tenant_id, after_id=after_id, limit=10_000)

    stream = _stream(ctx, sub, replay, start, False, keep=keep, announce=announce)
    return StreamingResponse(
        ctx.streams.held(principal.tenant_id, stream),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )


@router.websocket("/ws")
async def websocket(ws: WebSocket):
    """Send {"action": "subscribe", "job_ids": [...], "last_event_id"?: N} (or "unsubscribe");
    receive {"type": "event", "event": {...}} for each event of those jobs. Send {"action":
    "subscribe", "labels": {...}} to follow every job of the tenant with those labels, new ones
    included (with "last_event_id", replaying since then first). `?dialect=busquepet` speaks
    BusquePet's messages instead (busque.api.ws_dialects). Authenticate with
    the usual headers or ?api_key= (browsers cannot set WebSocket headers)."""
    ctx = ws.app.state.ctx
    # Accept before closing: a close before the handshake completes is sent as a bare HTTP 403,
    # so the client would never see the 4401/4403 close code and its reason.
    await ws.accept()
    try:
        principal = await ctx.auth.authenticate(ws.headers, ws.query_params.get("api_key"))
    except ApiError as exc:
        await ws.close(code=4401, reason=exc.message)
        return
    if not principal.allows("jobs:read"):
        await ws.close(code=4403, reason="this API key lacks the 'jobs:read' scope")
        return
    try:
        ctx.streams.take(principal.tenant_id)
    except ApiError as exc:
        await ws.close(code=4429, reason=exc.message)
        return
    try:
        if ws.query_params.get("dialect") == "busquepet":
            await _speak_busquepet(ws, ctx, principal)
        else:
            await _follow(ws, ctx, principal)
    finally:
        ctx.streams.give_back(principal.tenant_id)


async def _speak_busquepet(ws: WebSocket, ctx, principal: Principal) -> None:
    """Every job of the tenant, in BusquePet's messages (busque.api.ws_dialects), until the
    client goes; what the client sends is read and dropped, as BusquePet's hub did."""
    tenant = principal.tenant_id
    dialect = BusquePetDialect()
    sub = await ctx.tail.subscribe(lambda e: e["tenant_id"] == tenant)

    async def send_events():
        while True:
            event = await sub.get(timeout=ctx.settings.events.keepalive_s)
            for message in dialect.messages(event) if event is not None else ():
                await ws.send_json(message)

    sending = asyncio.create_task(send_events())
    with sub:
        try:
            while (await ws.receive())["type"] != "websocket.disconnect":
                pass
        finally:
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sending


async def _follow(ws: WebSocket, ctx, principal: Principal) -> None:
    """The WebSocket's session: subscriptions in, events out, until the client goes."""
    jobs: set[str] = set()
    label_sets: list[dict[str, str]] = []  # the tenant's jobs with these labels, new ones too
    tenant = principal.tenant_id
    sent: dict[str, int] = {}

    def followed(event: dict) -> bool:
        return event["job_id"] in jobs or (
            event["tenant_id"] == tenant
            and any(job_labels.matches(event["labels"], w) for w in label_sets)
        )

    sub = await ctx.tail.subscribe(followed)
    outgoing: asyncio.Queue[dict] = asyncio.Queue()
    # Held while a job's past is replayed, so live events of it wait in the queue behind it.
    replaying = asyncio.Lock()

    async def forward_live():
        while True:
            event = await sub.get(timeout=ctx.settings.events.keepalive_s)
            if event is None:
                await outgoing.put({"type": "ping"})
                continue
            async with replaying:
                if followed(event) and event["id"] > sent.get(event["job_id"], 0):
                    sent[event["job_id"]] = event["id"]
                    await outgoing.put({"type": "event", "event": event_view(event)})

    async def send_all():
        while True:
            await ws.send_json(await outgoing.get())

    async def subscribe(job_ids: list[str], after: int) -> None:
        for job_id in job_ids:
            job = await asyncio.to_thread(ctx.jobs.get, job_id, principal.tenant_id)
            if job is None:
                await outgoing.put(_ws_error("job_not_found", f"no job {job_id!r}"))
                continue
            async with replaying:
                jobs.add(job_id)
                await outgoing.put({"type": "subscribed", "job_id": job_id})
                cursor = after
                # The store answers a page at a time: read until a page comes back empty.
                while past := await asyncio.to_thread(
                    ctx.jobs.events, job_id=job_id, after_id=cursor
                ):
                    cursor = past[-1]["id"]
                    for event in past:
                        if event["id"] > sent.get(job_id, 0):
                            sent[job_id] = event["id"]
                            await outgoing.put({"type": "event", "event": event_view(event)})

    async def follow_labels(wanted: dict[str, str], after: int | None) -> None:
        """Follow the tenant's jobs with these labels; with `after`, replay their events
        since then first."""
        async with replaying:
            if wanted not in label_sets:
                label_sets.append(wanted)
            await outgoing.put({"type": "subscribed", "labels": wanted})
            cursor = after
            while cursor is not None and (
                past := await asyncio.to_thread(ctx.jobs.events, tenant_id=tenant, after_id=cursor)
            ):
                cursor = past[-1]["id"]
                for event in past:
                    if job_labels.matches(event["labels"], wanted) and event["id"] > sent.get(
                        event["job_id"], 0
                    ):
                        sent[event["job_id"]] = event["id"]
                        await outgoing.put({"type": "event", "event": event_view(event)})

    tasks = [asyncio.create_task(forward_live()), asyncio.create_task(send_all())]
    try:
        while True:
            try:
                message = strict_json.loads(await ws.receive_text())
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                # KeyError or TypeError: a binary frame, which has no text.
                reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "binary frame"
                await outgoing.put(_ws_error("invalid_json", f"send JSON text messages: {reason}"))
                continue
            if not isinstance(message, dict):
                message = {}
            action, labels = message.get("action"), message.get("labels")
            job_ids = message.get("job_ids", [] if labels is not None else None)
            after = message.get("last_event_id", 0)
            if labels is not None:
                try:
                    if not isinstance(labels, dict):
                        raise job_labels.InvalidLabels("labels must be an object of strings")
                    labels = job_labels.check(labels)
                except job_labels.InvalidLabels as exc:
                    await outgoing.put(_ws_error("invalid_labels", str(exc)))
                    continue
                if (
                    action == "subscribe"
                    and labels not in label_sets
                    and len(label_sets) >= MAX_WS_LABEL_SETS
                ):
                    refusal = f"a connection may follow at most {MAX_WS_LABEL_SETS} label sets"
                    await outgoing.put(_ws_error("invalid_request", refusal))
                    continue
            if (
                action not in ("subscribe", "unsubscribe")
                or not isinstance(job_ids, list)
                or not all(isinstance(j, str) for j in job_ids)
            ):
                await outgoing.put(
                    _ws_error(
                        "invalid_request",
                        'expected {"action": "subscribe"|"unsubscribe", "job_ids": [...]}',
                    )
                )
                continue
            if not _valid_event_id(after):
                await outgoing.put(
                    _ws_error(
                        "invalid_request",
                        f"last_event_id must be an integer from 0 to {MAX_EVENT_ID}",
                    )
                )
                continue
            if len(job_ids) > MAX_WS_JOBS:  # duplicates too: each one would cost a query
                await outgoing.put(
                    _ws_error(
                        "invalid_request",
                        f"a message may name at most {MAX_WS_JOBS} job ids",
                    )
                )
                continue
            job_ids = list(dict.fromkeys(job_ids))
            if action == "subscribe" and len(jobs.union(job_ids)) > MAX_WS_JOBS:
                await outgoing.put(
                    _ws_error(
                        "invalid_request",
                        f"a connection may follow at most {MAX_WS_JOBS} jobs at a time;"
                        " unsubscribe some or open another connection",
                    )
                )
                continue
            if action == "subscribe":
                await subscribe(job_ids, after)
                if labels is not None:
                    await follow_labels(labels, after if "last_event_id" in message else None)
                continue
            if "job_ids" in message:
                jobs.difference_update(job_ids)
                await outgoing.put({"type": "unsubscribed", "job_ids": job_ids})
            if labels is not None:
                if labels in label_sets:
                    label_sets.remove(labels)
                await outgoing.put({"type": "unsubscribed", "labels": labels})
    except WebSocketDisconnect:
        pass
    finally:
        sub.close()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
