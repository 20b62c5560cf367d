"""AvatarForge's records as its clients read them (documentation: busque/api/openapi.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class ProfilePhotoJobStatus(BaseModel):
    jobId: str
    customerId: str
    status: Literal["PENDING", "PROCESSING", "DONE", "FAILED"]
    originalPhotoUrl: str | None
    generatedPhotoUrl: str | None
    error: str | None
    createdAt: str
    updatedAt: str


class Customer(BaseModel):
    customerId: str
    photos: list[str]
