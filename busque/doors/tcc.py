"""The TCC orchestrator's door (prefix /api/v1, key in `x-api-key`): jobs of a model preset
(busque.jobs.presets: `model_id` names a preset, its defaults under the client's
`input_params`), their status with QUEUED | RUNNING | SUCCEEDED | FAILED and
`progress_percent`, a presigned download of the job's file, and upload tickets whose
`object_name` a job takes as `input_params.image_path` (recorded as its `input` artifact in the
job's own transaction). Its errors are FastAPI's `{"detail"}`, with busque's envelope beside it.

Another tenant's job is a 404, not the document's 403: busque never says that an id it will not
show exists."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from busque.api.auth import require
from busque.api.bodies import STRICT_JSON_BODY
from busque.api.errors import envelope
from busque.api.job_requests import JobCreate, prepare, submit
from busque.api.objects import UploadRequest, new_upload
from busque.api.schemas.common import errors
from busque.auth.keys import Principal
from busque.doors.tcc_schemas import CreatedJob, Download, TccJob, UploadTicket
from busque.jobs.presets import Preset
from busque.storage.keys import InvalidKey, validate_key

DOWNLOAD_TTL_S = 3600  # the document's one hour
STATUS = {
    "queued": "QUEUED",
    "running": "RUNNING",
    "succeeded": "SUCCEEDED",
    "failed": "FAILED",
    "canceled": "FAILED",
}
IMAGE_PATH = "image_path"  # the input parameter that names an uploaded object


class DoorError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class TccRoute(APIRoute):
    """Answers a DoorError the orchestrator's way: FastAPI's `detail`, busque's envelope beside."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def answering(request: Request):
            try:
                return await handler(request)
            except DoorError as error:
                body = {"detail": error.message, **envelope(error.code, error.message)}
                return JSONResponse(body, error.status)

        return answering


router = APIRouter(prefix="/api/v1", tags=["door: TCC orchestrator"], route_class=TccRoute)


class JobRequest(BaseModel):
    model_config = STRICT_JSON_BODY
    model_id: str = Field(max_length=100)
    input_params: dict[str, Any]
    prompt: str | None = Field(None, max_length=10_000)


def _time(moment: float | None) -> str | None:
    """Times as the orchestrator wrote them: ISO 8601 in UTC, without an offset."""
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).replace(tzinfo=None).isoformat()


def _view(job: dict, preset: Preset | None) -> dict:
    params = dict(job["input"])
    params.pop("prompt", None)
    return {
        "id": job["id"],
        "model_id": (job.get("labels") or {}).get("model_id", job["model"]),
        "status": STATUS[job["state"]],
        "progress_percent": round(job["progress"] or 0),
        "created_at": _time(job["created_at"]),
        "started_at": _time(job.get("started_at")),
        "completed_at": _time(job.get("finished_at")),
        "input_params": preset.client_params(params) if preset else params,
    }


async def _input_artifact(ctx, tenant_id: str, object_name: Any) -> dict:
    """The uploaded object a job names, as its input artifact: the tenant's, and there."""
    if not isinstance(object_name, str):
        raise DoorError(400, "invalid_request", f"{IMAGE_PATH} must be an object_name")
    try:
        validate_key(object_name)
    except InvalidKey as exc:
        raise DoorError(400, "invalid_key", f"{IMAGE_PATH}: {exc}") from None
    info = None
    if object_name.startswith(f"{tenant_id}/"):
        info = await asyncio.to_thread(ctx.objects.stat, object_name)
    if info is None:
        raise DoorError(404, "object_not_found", f"no uploaded object {object_name!r}")
    return {
        "name": "input",
        "object_key": object_name,
        "content_type": info.content_type,
        "size": info.size,
    }


async def _job(ctx, job_id: str, tenant_id: str) -> dict:
    job = await asyncio.to_thread(ctx.jobs.get, job_id, tenant_id)
    if job is None or (job.get("labels") or {}).get("door") != "tcc":
        raise DoorError(404, "job_not_found", "Job not found")
    return job


@router.post(
    "/jobs/",
    status_code=201,
    summary="Create a generation job of a model preset",
    responses={201: {"model": CreatedJob}, **errors(400, 404)},
)
async def create_job(
    body: JobRequest, request: Request, principal: Principal = Depends(require("jobs:write"))
):
    ctx = request.app.state.ctx
    preset = await asyncio.to_thread(ctx.runtime.presets.get, body.model_id)
    if preset is None:
        raise DoorError(404, "unknown_model", f"Model {body.model_id!r} not found")
    artifacts = ()
    if IMAGE_PATH in body.input_params:
        image = body.input_params[IMAGE_PATH]
        artifacts = (await _input_artifact(ctx, principal.tenant_id, image),)
    job_input = preset.job_input(body.input_params)
    if body.prompt is not None:
        job_input["prompt"] = body.prompt
    labels = {"door": "tcc", "model_id": preset.id}
    new = await prepare(
        ctx, principal, JobCreate(model=preset.job_kind, input=job_input, labels=labels)
    )
    job, _ = await submit(ctx, replace(new, input_artifacts=artifacts))
    view = _view(job, preset)
    return {key: view[key] for key in ("id", "model_id", "status", "created_at", "input_params")}


@router.get(
    "/jobs/{job_id}",
    summary="A job's status and progress",
    responses={200: {"model": TccJob}, **errors(404)},
)
async def get_job(
    job_id: str, request: Request, principal: Principal = Depends(require("jobs:read"))
):
    ctx = request.app.state.ctx
    job = await _job(ctx, job_id, principal.tenant_id)
    preset = await asyncio.to_thread(ctx.runtime.presets.get, job["labels"]["model_id"])
    return _view(job, preset)


@router.get(
    "/jobs/{job_id}/download",
    summary="A presigned URL of the job's file (1 hour)",
    responses={200: {"model": Download}, **errors(404)},
)
async def download(
    job_id: str, request: Request, principal: Principal = Depends(require("jobs:read"))
):
    ctx = request.app.state.ctx
    job = await _job(ctx, job_id, principal.tenant_id)
    if job["state"] != "succeeded":
        raise DoorError(400, "job_not_finished", "Job not finished yet")
    outputs = [
        a for a in await asyncio.to_thread(ctx.jobs.artifacts, job_id) if a["name"] != "input"
    ]
    if not outputs:
        raise DoorError(404, "artifact_not_found", "File not found")
    url = await asyncio.to_thread(ctx.objects.presign_get, outputs[0]["object_key"], DOWNLOAD_TTL_S)
    return {"download_url": url, "expires_in": DOWNLOAD_TTL_S}


@router.post(
    "/jobs/upload-ticket",
    summary="A presigned PUT for a job's input file",
    responses={200: {"model": UploadTicket}},
)
async def upload_ticket(
    body: UploadRequest, request: Request, principal: Principal = Depends(require("objects:write"))
):
    ticket = await new_upload(request.app.state.ctx, principal.tenant_id, body)
    return {"upload_url": ticket["upload_url"], "object_name": ticket["object_key"]}
