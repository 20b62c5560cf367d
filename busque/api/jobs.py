"""The jobs API: create (202 + Location, Idempotency-Key), get (?wait= long-poll), list, cancel,
artifacts and the webhook delivery log."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from busque.api.auth import require
from busque.api.errors import ApiError, not_found
from busque.api.job_requests import JobCreate, label_filter, prepare, submit
from busque.api.schemas.common import errors
from busque.api.schemas.jobs import ArtifactList, Job, JobList, WebhookDeliveryList
from busque.api.strict_json import StrictJsonRoute
from busque.api.views import iso, job_view, parse_iso
from busque.auth.keys import Principal
from busque.jobs.labels import MAX_LABELS
from busque.jobs.store import STATES, TERMINAL

router = APIRouter(prefix="/v1", tags=["jobs"], route_class=StrictJsonRoute)


def _ctx(request: Request):
    return request.app.state.ctx


def _load_job(ctx, job_id: str, principal: Principal) -> dict:
    job = ctx.jobs.get(job_id, principal.tenant_id)
    if job is None:  # also another tenant's job: never leak that it exists
        raise not_found("job", job_id)
    return job


@router.post(
    "/jobs",
    status_code=202,
    summary="Submit a job",
    responses={
        202: {"model": Job, "description": "Queued (or still running after Prefer: wait)"},
        201: {"model": Job, "description": "Finished within Prefer: wait=N"},
        **errors(404, 409),
    },
)
async def create_job(
    body: JobCreate,
    request: Request,
    response: Response,
    principal: Principal = Depends(require("jobs:write")),
    idempotency_key: Annotated[
        str | None, Header(min_length=1, max_length=200, pattern=r"\S")
    ] = None,
    prefer: Annotated[
        str | None,
        Header(
            description="`wait=N` (RFC 7240): hold the response up to N s for the result; "
            "201 if the job finished by then, else 202"
        ),
    ] = None,
):
    ctx = _ctx(request)
    wait = _preferred_wait(prefer)
    new = await prepare(ctx, principal, body, idempotency_key)
    # With Prefer: wait, subscribe before the job exists, so not even its first events can be
    # missed and no extra read is needed.
    sub = await ctx.tail.job(new.id) if wait else None
    try:
        job, created = await submit(ctx, new)
        if not created:
            response.headers["Idempotent-Replayed"] = "true"
        response.headers["Location"] = f"/v1/jobs/{job['id']}"
        if wait:
            if created:
                job = await _follow(ctx, sub, job, principal, wait)
            else:
                job = await wait_until_finished(ctx, job["id"], principal, wait)
            response.headers["Preference-Applied"] = prefer_value(wait)
            if job["state"] in TERMINAL:
                response.status_code = 201
    finally:
        if sub is not None:
            sub.close()
    return await _signed(ctx, job_view(job))


def prefer_value(wait: float) -> str:
    return f"wait={wait:g}"


def _preferred_wait(prefer: str | None) -> float:
    for part in (prefer or "").replace(";", ",").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "wait":
            try:
                return max(0.0, float(value.strip().strip('"')))
            except ValueError:
                raise ApiError(422, "invalid_request", "Prefer: wait=N needs a number") from None
    return 0.0


async def wait_until_finished(ctx, job_id: str, principal: Principal, wait: float) -> dict:
    """The job once it is terminal, or as it is after `wait` seconds (capped by max_wait_s)."""
    if wait <= 0:
        return await asyncio.to_thread(_load_job, ctx, job_id, principal)
    # Subscribe first, then read: a change after the read arrives as an event.
    with await ctx.tail.job(job_id) as sub:
        job = await asyncio.to_thread(_load_job, ctx, job_id, principal)
        return await _follow(ctx, sub, job, principal, wait)


async def _follow(ctx, sub, job: dict, principal: Principal, wait: float) -> dict:
    """Wait on a subscription, opened before `job` was read, until the job is terminal."""
    deadline = time.monotonic() + min(wait, ctx.settings.jobs.max_wait_s)
    while job["state"] not in TERMINAL and (left := deadline - time.monotonic()) > 0:
        event = await sub.get(timeout=left)
        if event is None:
            break
        if event["type"] == "job.status" and event["data"].get("status") in TERMINAL:
            job = await asyncio.to_thread(_load_job, ctx, job["id"], principal)
    return job


@router.get(
    "/jobs/{job_id}",
    summary="Get a job; ?wait=N long-polls until it finishes",
    responses={200: {"model": Job}, **errors(404)},
)
async def get_job(
    job_id: str,
    request: Request,
    wait: Annotated[float, Query(ge=0, description="seconds to wait for a terminal state")] = 0,
    principal: Principal = Depends(require("jobs:read")),
):
    ctx = _ctx(request)
    return await _signed(ctx, job_view(await wait_until_finished(ctx, job_id, principal, wait)))


async def _signed(ctx, view: dict) -> dict:
    """Artifacts a result names (dicts with an `object_key` under the job's artifacts) get a
    fresh presigned download `url` in the view; the stored result keeps no expiring URL."""
    prefix = f"/artifacts/{view['id']}/"
    ttl = ctx.settings.storage.url_ttl_s

    def walk(value):
        if isinstance(value, list):
            return [walk(v) for v in value]
        if not isinstance(value, dict):
            return value
        value = {k: walk(v) for k, v in value.items()}
        key = value.get("object_key")
        if isinstance(key, str) and prefix in key:
            value["url"] = ctx.objects.presign_get(key, ttl)
        return value

    if view["result"] is not None:
        view["result"] = await asyncio.to_thread(walk, view["result"])
    return view


def _timestamp(value: str | None, name: str) -> float | None:
    moment = parse_iso(value, name)
    if moment is None:
        return None
    if moment.tzinfo is None:  # no offset: UTC (the machine's zone would make it ambiguous)
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@router.get(
    "/jobs",
    summary="List jobs, newest first, with cursor pagination",
    responses={200: {"model": JobList}, **errors(400)},
)
async def list_jobs(
    request: Request,
    status: Annotated[list[str] | None, Query()] = None,
    model: str | None = None,
    created_after: str | None = None,
    created_before: str | None = None,
    label: Annotated[
        list[str] | None, Query(description="key=value; repeat it for jobs with all of them")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
    principal: Principal = Depends(require("jobs:read")),
):
    wanted = label_filter(label)
    states = [s for value in status or [] for s in value.split(",") if s]
    unknown = set(states) - set(STATES)
    if unknown:
        raise ApiError(
            422, "invalid_request", f"unknown status {sorted(unknown)}", {"allowed": list(STATES)}
        )
    try:
        rows, next_cursor = await asyncio.to_thread(
            _ctx(request).jobs.list,
            principal.tenant_id,
            states=states,
            model=model,
            created_after=_timestamp(created_after, "created_after"),
            created_before=_timestamp(created_before, "created_before"),
            labels=wanted,
            limit=limit,
            cursor=cursor,
        )
    except ValueError as exc:
        raise ApiError(400, "invalid_cursor", str(exc)) from None
    return {"object": "list", "data": [job_view(j) for j in rows], "next_cursor": next_cursor}


@router.post(
    "/jobs/{job_id}/cancel",
    summary="Cancel a job (a running one stops cooperatively)",
    responses={
        200: {"model": Job, "description": "Canceled (also: canceled before)"},
        202: {"model": Job, "description": "Running: asked to stop"},
        **errors(404, 409),
    },
    description="409 `job_finished` if it succeeded or failed first; cancelling a canceled job "
    "again answers it (200), so a cancel can be retried safely.",
)
async def cancel_job(
    job_id: str,
    request: Request,
    response: Response,
    principal: Principal = Depends(require("jobs:write")),
):
    ctx = _ctx(request)
    job = await asyncio.to_thread(_load_job, ctx, job_id, principal)
    if job["state"] == "canceled":  # idempotent: a cancel sent again (a retry) did its work
        return job_view(job)
    if job["state"] in TERMINAL:
        raise ApiError(409, "job_finished", f"job {job_id} is already {job['state']}")
    job = await asyncio.to_thread(ctx.jobs.request_cancel, job_id, principal.tenant_id)
    if job["state"] in TERMINAL and job["state"] != "canceled":  # it ended first
        raise ApiError(409, "job_finished", f"job {job_id} is already {job['state']}")
    if job["state"] == "running":
        ctx.cancel_on_dispatcher(job_id)
        response.status_code = 202
    return job_view(job)


@router.post(
    "/jobs/{job_id}/retry",
    status_code=202,
    summary="Run a failed or canceled job again: a new job with the same model, input and webhook",
    responses={202: {"model": Job}, **errors(404, 409)},
)
async def retry_job(
    job_id: str,
    request: Request,
    response: Response,
    principal: Principal = Depends(require("jobs:write")),
):
    ctx = _ctx(request)
    job = await asyncio.to_thread(_load_job, ctx, job_id, principal)
    if job["state"] not in ("failed", "canceled"):
        state = job["state"]
        message = f"job {job_id} is {state}: only a failed or canceled job can be retried"
        raise ApiError(409, "job_not_retryable", message)
    labels = dict(job.get("labels") or {})
    if len(labels) < MAX_LABELS:  # the trace back, where the caller's labels leave room
        labels.setdefault("retry_of", job_id)
    ask = JobCreate(
        model=job["model"],
        input=job["input"],
        params=job["params"],
        priority=job["priority"],
        labels=labels,
    )
    # The webhook as it was vetted and stored (a front door's body format included).
    new = dataclasses.replace(await prepare(ctx, principal, ask), webhook=job.get("webhook"))
    created, _ = await submit(ctx, new)
    response.headers["Location"] = f"/v1/jobs/{created['id']}"
    return job_view(created)


@router.get(
    "/jobs/{job_id}/artifacts",
    summary="A job's artifacts with download URLs",
    responses={200: {"model": ArtifactList}, **errors(404)},
)
async def job_artifacts(
    job_id: str, request: Request, principal: Principal = Depends(require("jobs:read"))
):
    ctx = _ctx(request)
    await asyncio.to_thread(_load_job, ctx, job_id, principal)
    ttl = ctx.settings.storage.url_ttl_s
    items = []
    for art in await asyncio.to_thread(ctx.jobs.artifacts, job_id):
        url = await asyncio.to_thread(ctx.objects.presign_get, art["object_key"], ttl)
        items.append(
            {
                "name": art["name"],
                "object_key": art["object_key"],
                "content_type": art["content_type"],
                "size": art["size"],
                "created_at": iso(art["created_at"]),
                "url": url,
                "expires_at": iso(time.time() + ttl),
            }
        )
    return {"object": "list", "data": items}


@router.get(
    "/jobs/{job_id}/webhooks",
    summary="The job's webhook delivery log",
    responses={200: {"model": WebhookDeliveryList}, **errors(404)},
)
async def job_webhooks(
    job_id: str, request: Request, principal: Principal = Depends(require("jobs:read"))
):
    ctx = _ctx(request)
    await asyncio.to_thread(_load_job, ctx, job_id, principal)
    rows = await asyncio.to_thread(ctx.outbox.deliveries, job_id)
    data = [
        {
            "id": d["id"],
            "event_id": d["event_id"],
            "event_type": d["event_type"],
            "url": d["url"],
            "state": d["state"],
            "attempts": d["attempts"],
            "last_status": d["last_status"],
            "last_error": d["last_error"],
            "next_attempt_at": iso(d["next_attempt_at"]) if d["state"] == "pending" else None,
            "delivered_at": iso(d["delivered_at"]),
            "log": d["log"],
        }
        for d in rows
    ]
    return {"object": "list", "data": data}
