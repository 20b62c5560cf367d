"""AvatarForge's gRPC service (com.taumaturgo.grpc.ProfilePhotoJobGrpc, busque/grpc/
profile_photo_job.proto), answered by the Gateway beside busque.v1.JobService: both services
have a GetStatus and a StreamStatus, and the Gateway tells them apart by the request's type.

- GetStatus(job_id, wait_seconds): the job's status; wait_seconds > 0 long-polls until DONE or
  FAILED (clamped to jobs.max_wait_s). NOT_FOUND for a job that is not the door's.
- StreamStatus(customer_id, job_id?): the customer's job updates as they happen; with a job_id,
  its current status first, and the stream ends once that job is DONE or FAILED (AvatarForge's
  stayed open; a client that reads until then sees the same messages).

Errors follow busque.api.grpc_jobs: the code is set on the context, and a stream raises."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from busque.api.errors import ApiError
from busque.api.grpc_jobs import (
    MAX_JOB_ID,
    RESYNC_S,
    GrpcError,
    authorize,
    streamed,
    unary,
)
from busque.api.jobs import wait_until_finished
from busque.doors import avatarforge_status as status
from busque.grpc import profile_photo_job_pb2 as pb
from busque.jobs import labels as job_labels
from busque.jobs.store import TERMINAL

_STATUS = {
    "PENDING": pb.STATUS_PENDING,
    "PROCESSING": pb.STATUS_PROCESSING,
    "DONE": pb.STATUS_DONE,
    "FAILED": pb.STATUS_FAILED,
}


def _timestamp(iso: str) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime.fromisoformat(iso))
    return stamp


def response(view: dict) -> pb.JobStatusResponse:
    return pb.JobStatusResponse(
        job_id=view["jobId"],
        customer_id=view["customerId"],
        status=_STATUS[view["status"]],
        original_photo_url=view["originalPhotoUrl"] or "",
        generated_photo_url=view["generatedPhotoUrl"] or "",
        error=view["error"] or "",
        created_at=_timestamp(view["createdAt"]),
        updated_at=_timestamp(view["updatedAt"]),
    )


async def _response(ctx: Any, job: dict) -> pb.JobStatusResponse:
    ttl = ctx.settings.storage.url_ttl_s
    view = await asyncio.to_thread(status.read_status, ctx.jobs, ctx.objects, ttl, job)
    return response(view)


def _checked_id(value: str, name: str) -> str:
    if len(value) > MAX_JOB_ID:
        raise GrpcError(grpc.StatusCode.INVALID_ARGUMENT, f"{name} is too long")
    return value


async def _door_job(ctx: Any, job_id: str, tenant_id: str, customer_id: str | None) -> dict:
    job = await asyncio.to_thread(ctx.jobs.get, job_id, tenant_id)
    if not status.is_door_job(job, customer_id):
        raise GrpcError(grpc.StatusCode.NOT_FOUND, f"Job {job_id} not found")
    return job


async def _get_status(ctx: Any, request: Any, grpc_context: Any) -> pb.JobStatusResponse:
    principal = await authorize(ctx, grpc_context)
    job_id = _checked_id(request.job_id, "job_id")
    job = await _door_job(ctx, job_id, principal.tenant_id, None)
    if request.wait_seconds > 0:
        try:
            job = await wait_until_finished(ctx, job_id, principal, request.wait_seconds)
        except ApiError:  # deleted meanwhile
            raise GrpcError(grpc.StatusCode.NOT_FOUND, f"Job {job_id} not found") from None
    return await _response(ctx, job)


async def get_status(ctx: Any, request: Any, grpc_context: Any) -> pb.JobStatusResponse:
    return await unary(
        _get_status(ctx, request, grpc_context), grpc_context, pb.JobStatusResponse()
    )


async def _stream_status(
    ctx: Any, request: Any, grpc_context: Any
) -> AsyncIterator[pb.JobStatusResponse]:
    principal = await authorize(ctx, grpc_context)
    customer_id = request.customer_id
    if not customer_id.strip():
        raise GrpcError(grpc.StatusCode.INVALID_ARGUMENT, "customer_id is required")
    if len(customer_id) > job_labels.MAX_VALUE:
        raise GrpcError(grpc.StatusCode.INVALID_ARGUMENT, "customer_id is too long")
    job_id = _checked_id(request.job_id, "job_id")
    tenant = principal.tenant_id
    # Subscribed before reading: nothing falls between.
    with await ctx.tail.subscribe(
        status.follows(tenant, customer_id, job_id)
    ) as sub:  # before reading: nothing falls between
        if job_id:
            job = await _door_job(ctx, job_id, tenant, customer_id)
            yield await _response(ctx, job)
            if job["state"] in TERMINAL:
                return
        while True:
            event = await sub.get(timeout=RESYNC_S)
            if event is None:
                continue
            job = await asyncio.to_thread(ctx.jobs.get, event["job_id"], tenant)
            if job is None:
                continue
            yield await _response(ctx, job)
            if job_id and job["state"] in TERMINAL:
                return


async def stream_status(
    ctx: Any, request: Any, grpc_context: Any
) -> AsyncIterator[pb.JobStatusResponse]:
    async for message in streamed(_stream_status(ctx, request, grpc_context), grpc_context):
        yield message
