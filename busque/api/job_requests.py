"""What a request to create a job becomes: the body of `POST /v1/jobs`, checked against the
job-kind catalog, its inputs admitted and its webhook vetted (prepare), then stored and the
dispatcher woken (submit). The jobs API and the front doors (busque/doors/) create jobs
through here, so a job is the same job whichever door it came in by."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from busque.api.bodies import STRICT_JSON_BODY
from busque.api.errors import ApiError, invalid
from busque.auth.keys import Principal
from busque.jobs import labels as job_labels
from busque.jobs import webhooks
from busque.jobs.store import IdempotencyConflict, NewJob
from busque.models.base import ModelError

EventType = Literal["job.status", "job.progress", "job.output", "job.result"]


class WebhookSpec(BaseModel):
    model_config = STRICT_JSON_BODY
    url: str = Field(max_length=2000)
    events: list[EventType] | None = Field(None, description="default: job.status, job.result")
    secret: str | None = Field(
        None, pattern=r"^whsec_[A-Za-z0-9+/=]{16,}$", description="default: the tenant's secret"
    )


class JobCreate(BaseModel):
    model_config = STRICT_JSON_BODY
    model: str = Field(max_length=100)
    input: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    webhook: WebhookSpec | None = None
    priority: int = Field(0, ge=-100, le=100, description="higher runs first")
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="your own small string map (at most 16; keys lower-case), to list and "
        "follow jobs by: GET /v1/jobs?label=key=value, /v1/events?label=..., the WebSocket",
    )


def checked_labels(labels: dict) -> dict[str, str]:
    try:
        return job_labels.check(labels)
    except job_labels.InvalidLabels as exc:
        raise ApiError(422, "invalid_labels", str(exc)) from None


def label_filter(selectors: list[str] | None) -> dict[str, str]:
    """`?label=key=value` (repeatable) as a map; 422 for a malformed one."""
    try:
        return job_labels.parse_filter(selectors or [])
    except job_labels.InvalidLabels as exc:
        raise ApiError(422, "invalid_labels", str(exc)) from None


async def prepare(
    ctx, principal: Principal, request: JobCreate, idempotency_key: str | None = None
) -> NewJob:
    """The job `request` asks for, checked; an ApiError says what is wrong with it."""
    limit = ctx.settings.jobs.max_input_bytes
    if len(json.dumps([request.input, request.params], ensure_ascii=False).encode()) > limit:
        raise ApiError(
            413,
            "payload_too_large",
            f"a job's input and params are limited to {limit} bytes of JSON: "
            "upload larger data (POST /v1/uploads) and pass its object key",
            {"max_bytes": limit},
        )
    labels = checked_labels(request.labels)
    spec = ctx.registry.get(request.model)
    if spec is not None and not spec.public:
        raise ApiError(
            422,
            "model_not_submittable",
            f"model {spec.id!r} runs through its own endpoint, not /v1/jobs",
        )
    if spec is None:
        raise ApiError(
            404,
            "unknown_model",
            f"no model {request.model!r}",
            {"available": [s.id for s in ctx.registry]},
        )
    reason = spec.unavailable(ctx.settings)
    if reason:
        raise ApiError(422, "model_unavailable", f"model {spec.id!r} is unavailable: {reason}")
    try:
        inputs, params = spec.validate(request.input, request.params)
    except ValidationError as exc:
        raise invalid(
            exc, "invalid_input", f"input or params do not fit model {spec.id!r}"
        ) from None
    if spec.admit is not None:
        try:
            await asyncio.to_thread(spec.admit, inputs, principal.tenant_id, ctx.objects)
        except ModelError as exc:  # a missing (or another tenant's) object is a 404, as elsewhere
            status = 404 if exc.code == "object_not_found" else 422
            raise ApiError(status, exc.code, str(exc)) from None
    hook = None
    if request.webhook:
        try:
            await asyncio.to_thread(
                webhooks.validate_url, request.webhook.url, ctx.settings.webhooks.allow_networks
            )
        except webhooks.WebhookTargetRefused as exc:
            raise ApiError(422, "invalid_webhook", str(exc)) from None
        hook = request.webhook.model_dump(exclude_none=True)
    return NewJob(
        tenant_id=principal.tenant_id,
        model=spec.id,
        input=inputs,
        params=params,
        priority=request.priority,
        max_attempts=spec.max_attempts or ctx.settings.jobs.max_attempts,
        timeout_s=spec.timeout_s or ctx.settings.jobs.default_timeout_s,
        webhook=hook,
        idempotency_key=idempotency_key,
        labels=labels,
    )


async def submit(ctx, new: NewJob) -> tuple[dict, bool]:
    """Store the job and wake a dispatcher; (job, created): a replayed Idempotency-Key gives the
    first job and False."""
    try:
        job, created = await asyncio.to_thread(ctx.jobs.create, new)
    except IdempotencyConflict as exc:
        raise ApiError(409, "idempotency_conflict", str(exc)) from None
    if created:
        ctx.wake_dispatcher()
    return job, created
