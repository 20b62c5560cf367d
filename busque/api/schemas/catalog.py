"""The model catalog as the API shows it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from busque.api.schemas.common import Page


class Resources(BaseModel):
    num_cpus: float
    num_gpus: float


class ModelInfo(BaseModel):
    id: str
    kind: str
    backend: str | None
    description: str | None
    deployment: str | None
    default_parameters: dict[str, Any]
    parameter_schema: dict[str, Any]
    input_schema: dict[str, Any]
    resources: Resources
    public: bool
    available: bool
    unavailable_reason: str | None


class ModelList(Page):
    data: list[ModelInfo]
