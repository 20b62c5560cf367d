"""The TCC orchestrator's records as its clients read them (documentation only)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

Status = Literal["QUEUED", "RUNNING", "SUCCEEDED", "FAILED"]


class CreatedJob(BaseModel):
    id: str
    model_id: str
    status: Status
    created_at: str
    input_params: dict[str, Any]


class TccJob(CreatedJob):
    progress_percent: int
    started_at: str | None
    completed_at: str | None


class Download(BaseModel):
    download_url: str
    expires_in: int


class UploadTicket(BaseModel):
    upload_url: str
    object_name: str
