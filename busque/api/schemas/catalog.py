"""The model catalog as the API shows it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

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
    # OpenAI's model object (`client.models.list()` reads this path too)
    object: Literal["model"]
    created: int
    owned_by: str
    openai_endpoints: list[str] = Field(
        description="the OpenAI-compatible routes that serve it; others run as jobs"
    )


class ModelList(Page):
    data: list[ModelInfo]
