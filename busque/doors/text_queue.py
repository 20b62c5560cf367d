"""The Flask + RabbitMQ text-generation queue's door: `POST /api/predict {"text"}` answers
`{"job_id"}`; `GET /api/result/<job_id>` answers 202 `{"status"}` until the job is done, then
200 `{"result": {"content", "role": "assistant", "tool_calls": null}}`, as its demo page polls
every 2 s. The job is a busque text-generation job of `text.model` (the user's text as the one
chat message); the queue had no keys, busque's key goes in X-API-Key."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from busque.api.auth import require
from busque.api.bodies import STRICT_JSON_BODY
from busque.api.errors import ApiError, not_found
from busque.api.job_requests import JobCreate, prepare, submit
from busque.api.schemas.common import errors
from busque.auth.keys import Principal

router = APIRouter(prefix="/api", tags=["door: text-generation queue"])

# busque's job states as the queue named them ("pending" until a worker had it).
STATUS = {"queued": "pending", "running": "running", "failed": "failed", "canceled": "canceled"}


class Predict(BaseModel):
    model_config = STRICT_JSON_BODY
    text: str = ""


class Queued(BaseModel):
    job_id: str


class Message(BaseModel):
    content: str
    role: str
    tool_calls: Any


class Done(BaseModel):
    result: Message


class Pending(BaseModel):
    status: Literal["pending", "running", "failed", "canceled"]
    error: str | None = None


@router.post(
    "/predict",
    summary="Queue a text generation; answers its job_id",
    responses={200: {"model": Queued}},
)
async def predict(
    body: Predict, request: Request, principal: Principal = Depends(require("jobs:write"))
):
    if not body.text.strip():
        raise ApiError(400, "invalid_request", "no text provided")
    ctx = request.app.state.ctx
    messages = [{"role": "user", "content": body.text}]
    job_request = JobCreate(model=ctx.settings.text.model, input={"messages": messages})
    job, _ = await submit(ctx, await prepare(ctx, principal, job_request))
    return {"job_id": job["id"]}


@router.get(
    "/result/{job_id}",
    summary="The job's status (202) or its result (200)",
    responses={
        200: {"model": Done | Pending, "description": "Its result, or how it failed"},
        202: {"model": Pending, "description": "Still pending or running"},
        **errors(404),
    },
)
async def result(
    job_id: str, request: Request, principal: Principal = Depends(require("jobs:read"))
):
    job = await asyncio.to_thread(request.app.state.ctx.jobs.get, job_id, principal.tenant_id)
    if job is None:
        raise not_found("job", job_id)
    if job["state"] == "succeeded":
        answer = job["result"]
        return {
            "result": {
                "content": answer["content"],
                "role": answer["role"],
                "tool_calls": answer["tool_calls"],
            }
        }
    status = {"status": STATUS[job["state"]]}
    if job["error_message"]:
        status["error"] = job["error_message"]
    return JSONResponse(status, 202 if job["state"] in ("queued", "running") else 200)
