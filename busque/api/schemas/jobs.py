"""Jobs, their events, artifacts, webhook deliveries and uploads as the API shows them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from busque.api.schemas.common import Page, Timestamp

JobStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]
EventType = Literal["job.status", "job.progress", "job.output", "job.result"]


class JobError(BaseModel):
    code: str
    message: str | None


class JobWebhook(BaseModel):
    url: str
    events: list[EventType] | None


class Job(BaseModel):
    """A job: `queued -> running -> succeeded | failed | canceled`. Artifacts its `result`
    names carry a fresh presigned download `url`."""

    id: str
    object: Literal["job"]
    model: str
    status: JobStatus
    progress: float | None
    input: dict[str, Any]
    params: dict[str, Any]
    priority: int
    attempts: int
    max_attempts: int
    cancel_requested: bool
    result: Any = Field(description="the model's result once succeeded, else null")
    error: JobError | None
    webhook: JobWebhook | None
    labels: dict[str, str]
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    updated_at: Timestamp


class JobList(Page):
    data: list[Job]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page")


class Event(BaseModel):
    """One change of a job: the `data:` of a server-sent event (its `id:` and `event:` lines
    are this id and type), a WebSocket message's event and a webhook's `data`."""

    id: int
    type: EventType
    job_id: str
    attempt: int
    created_at: Timestamp
    data: dict[str, Any]
    labels: dict[str, str]


class Artifact(BaseModel):
    name: str
    object_key: str
    content_type: str | None
    size: int | None
    created_at: Timestamp
    url: str = Field(description="a presigned GET, valid until expires_at")
    expires_at: Timestamp


class ArtifactList(Page):
    data: list[Artifact]


class WebhookDelivery(BaseModel):
    id: int | str
    event_id: int
    event_type: str
    url: str
    state: str
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: Timestamp | None
    delivered_at: Timestamp | None
    log: list[dict[str, Any]] | None


class WebhookDeliveryList(Page):
    data: list[WebhookDelivery]


class Upload(BaseModel):
    """A presigned PUT: send the bytes to `upload_url` with these headers, then name
    `object_key` in a job's input or an ingest."""

    object_key: str
    upload_url: str
    method: Literal["PUT"]
    headers: dict[str, str]
    max_bytes: int
    expires_at: Timestamp


class WebhookPayload(BaseModel):
    """The JSON body busque POSTs to a job's webhook (Standard Webhooks)."""

    type: EventType
    timestamp: Timestamp
    data: dict[str, Any] = Field(description="the event's data plus its `job_id` and `event_id`")
