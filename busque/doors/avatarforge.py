"""AvatarForge's door: a customer's profile photo in (multipart `photo`, optional `callbackUrl`),
`202` with `Location: /customers/{id}/photos/{jobId}/status`, and the job's
`ProfilePhotoJobStatus` (busque/doors/avatarforge_status.py) by polling, long-polling
(`waitSeconds`), an SSE stream of the customer's jobs, a webhook on DONE or FAILED (signed as
every busque webhook) and gRPC (busque/doors/avatarforge_grpc.py).

Each photo is an `avatar` job (img2img Stable Diffusion) with the input
`doors.avatarforge_input` (the form may add `style` and `prompt`), labelled door=avatarforge and
customer=<id>. A customer is who has sent a photo: `GET /customers` lists them with their
generated photos. AvatarForge had no keys; busque's door takes the tenant's key (`X-API-Key`)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from busque.api.auth import require
from busque.api.bodies import multipart_image
from busque.api.errors import ApiError, not_found
from busque.api.events import SSE_HEADERS
from busque.api.job_requests import JobCreate, WebhookSpec, prepare, submit
from busque.api.jobs import wait_until_finished
from busque.api.schemas.common import errors, event_stream, form_body
from busque.auth.keys import Principal
from busque.doors import avatarforge_status as status
from busque.doors.avatarforge_schemas import Customer, ProfilePhotoJobStatus
from busque.ids import new_id
from busque.jobs import labels as job_labels
from busque.storage import tenant_key

router = APIRouter(tags=["door: AvatarForge"])

CUSTOMERS_LISTED = 1000  # generated photos read for GET /customers, newest first


def _customer(customer_id: str) -> str:
    try:
        job_labels.check({status.CUSTOMER: customer_id})
    except job_labels.InvalidLabels:
        raise ApiError(
            422, "invalid_request", f"a customer id is at most {job_labels.MAX_VALUE} characters"
        ) from None
    return customer_id


def _webhook(callback_url: str | None) -> WebhookSpec | None:
    if not callback_url:
        return None
    try:
        return WebhookSpec(url=callback_url, events=["job.status"])
    except ValidationError:
        raise ApiError(422, "invalid_webhook", "callbackUrl is at most 2000 characters") from None


def _ttl(ctx) -> int:
    return ctx.settings.storage.url_ttl_s


async def _view(ctx, job: dict) -> dict:
    return await asyncio.to_thread(status.read_status, ctx.jobs, ctx.objects, _ttl(ctx), job)


async def _door_job(ctx, principal: Principal, customer_id: str, job_id: str) -> dict:
    job = await asyncio.to_thread(ctx.jobs.get, job_id, principal.tenant_id)
    if not status.is_door_job(job, customer_id):
        raise not_found("job", job_id)
    return job


# The form is read by hand (a streamed upload with a size cap): declared here.
PHOTO_FORM = form_body(
    "photo",
    {
        "callbackUrl": {"type": "string", "description": "a webhook"},
        "style": {"type": "string"},
        "prompt": {"type": "string"},
    },
)


@router.post(
    "/customers/{customer_id}",
    status_code=202,
    summary="A customer's photo in: an avatar job (202, Location: its status)",
    responses={202: {"model": ProfilePhotoJobStatus}, **errors(400, 413, 415, 422)},
    openapi_extra=PHOTO_FORM,
)
async def upload_photo(
    customer_id: str, request: Request, principal: Principal = Depends(require("jobs:write"))
):
    ctx = request.app.state.ctx
    _customer(customer_id)
    photo, fields = await multipart_image(request, ctx.settings.media.max_upload_bytes, "photo")
    hook = _webhook(fields.get("callbackUrl"))
    job_input = dict(ctx.settings.doors.avatarforge_input)
    job_input.update({k: fields[k] for k in ("style", "prompt") if fields.get(k)})
    key = tenant_key(principal.tenant_id, "uploads", new_id("up"), "photo")
    await asyncio.to_thread(ctx.objects.put, key, photo, None)
    try:
        labels = {"door": status.DOOR, status.CUSTOMER: customer_id}
        asked = JobCreate(
            model="avatar", input={**job_input, "image_key": key}, labels=labels, webhook=hook
        )
        new = await prepare(ctx, principal, asked)
        if new.webhook:  # AvatarForge's body, on DONE or FAILED only
            webhook = {**new.webhook, "format": status.WEBHOOK_FORMAT}
            new = replace(new, webhook={**webhook, "statuses": list(status.FINAL_STATES)})
        original = {"name": status.ORIGINAL, "object_key": key, "size": len(photo)}
        job, _ = await submit(ctx, replace(new, input_artifacts=(original,)))
    except Exception:  # refused: the photo goes too
        await asyncio.to_thread(ctx.objects.delete, key)
        raise
    location = f"/customers/{customer_id}/photos/{job['id']}/status"
    return JSONResponse(await _view(ctx, job), 202, headers={"Location": location})


@router.get(
    "/customers/{customer_id}/photos/{job_id}/status",
    summary="A photo job's status; waitSeconds=n long-polls until DONE or FAILED",
    responses={200: {"model": ProfilePhotoJobStatus}, **errors(404)},
)
async def photo_status(
    customer_id: str,
    job_id: str,
    request: Request,
    wait_seconds: Annotated[int, Query(alias="waitSeconds", ge=0)] = 0,
    principal: Principal = Depends(require("jobs:read")),
):
    ctx = request.app.state.ctx
    job = await _door_job(ctx, principal, customer_id, job_id)
    if wait_seconds > 0:
        job = await wait_until_finished(ctx, job_id, principal, wait_seconds)
    return await _view(ctx, job)


@router.get(
    "/customers/{customer_id}/photos/stream",
    summary="Server-sent events: the customer's photo jobs' ProfilePhotoJobStatus as they change",
    response_class=StreamingResponse,
    responses=event_stream(
        "The customer's photo jobs as they change",
        ProfilePhotoJobStatus,
        {"(unnamed)": "`data:` the job's ProfilePhotoJobStatus"},
    ),
)
async def photo_stream(
    customer_id: str, request: Request, principal: Principal = Depends(require("jobs:read"))
):
    ctx = request.app.state.ctx
    _customer(customer_id)
    tenant = principal.tenant_id
    ctx.streams.take(tenant)
    sub = await ctx.tail.subscribe(status.follows(tenant, customer_id))

    async def stream():
        with sub:
            while True:
                event = await sub.get(timeout=ctx.settings.events.keepalive_s)
                if event is None:
                    yield ": keepalive\n\n"
                    continue
                job = await asyncio.to_thread(ctx.jobs.get, event["job_id"], tenant)
                if job is not None:
                    yield f"data: {json.dumps(await _view(ctx, job))}\n\n"

    return StreamingResponse(
        ctx.streams.held(tenant, stream()), media_type="text/event-stream", headers=SSE_HEADERS
    )


async def _customers(ctx, tenant_id: str, customer_id: str | None = None) -> list[dict]:
    """{customerId, photos: [generated photo URLs, newest first]} of the tenant's customers."""
    having = {"door": status.DOOR}
    if customer_id is None:
        ids = await asyncio.to_thread(ctx.jobs.label_values, tenant_id, status.CUSTOMER, having)
    else:
        ids = [customer_id]
        having[status.CUSTOMER] = customer_id
    done, _ = await asyncio.to_thread(
        ctx.jobs.list, tenant_id, states=["succeeded"], labels=having, limit=CUSTOMERS_LISTED
    )

    def photos() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for job in done:
            _, generated = status.photo_urls(ctx.jobs.artifacts(job["id"]), ctx.objects, _ttl(ctx))
            if generated:
                found.setdefault(job["labels"][status.CUSTOMER], []).append(generated)
        return found

    urls = await asyncio.to_thread(photos)
    return [{"customerId": id_, "photos": urls.get(id_, [])} for id_ in ids]


@router.get(
    "/customers",
    summary="The customers who sent photos, with their generated photos",
    responses={200: {"model": list[Customer]}},
)
async def customers(request: Request, principal: Principal = Depends(require("jobs:read"))):
    return await _customers(request.app.state.ctx, principal.tenant_id)


@router.get(
    "/customers/{customer_id}",
    summary="A customer and their generated photos",
    responses={200: {"model": Customer}, **errors(404)},
)
async def customer(
    customer_id: str, request: Request, principal: Principal = Depends(require("jobs:read"))
):
    ctx = request.app.state.ctx
    _customer(customer_id)
    having = {"door": status.DOOR, status.CUSTOMER: customer_id}
    sent, _ = await asyncio.to_thread(ctx.jobs.list, principal.tenant_id, labels=having, limit=1)
    if not sent:
        raise not_found("customer", customer_id)
    (found,) = await _customers(ctx, principal.tenant_id, customer_id)
    return found
