"""Pipelines as jobs: `POST /v1/jobs {"model": "reindex", "input": {"collection": ...}}` runs the
reindex pipeline from a ModelHost replica (Ray Data submits its work to the same cluster), with
its stages reported as job.progress events."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from busque.config import Settings
from busque.media.catalog import COLLECTION_PATTERN
from busque.models.base import JobContext, Model
from busque.models.registry import ModelRegistry, ModelSpec
from pipelines.reindex import reindex


class ReindexInput(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt option is an error, not a default

    collection: str = Field(pattern=COLLECTION_PATTERN)
    recompute: StrictBool = Field(
        False, description="recompute embeddings with the configured model"
    )


class ReindexJob(Model):
    def __init__(self, runtime):
        super().__init__()
        self.runtime = runtime

    def _predict(self, inputs: dict[str, Any], ctx: JobContext) -> dict:
        def progress(percent: float, message: str) -> None:
            ctx.check_cancelled()
            ctx.progress(percent, message)

        return reindex(
            self.runtime,
            ctx.tenant_id,
            inputs["collection"],
            recompute=inputs["recompute"],
            progress=progress,
        )


def register(registry: ModelRegistry, settings: Settings) -> None:
    registry.register(
        ModelSpec(
            id="reindex",
            kind="pipeline",
            backend="ray-data",
            factory=ReindexJob,
            input_schema=ReindexInput,
            deployment="pipelines",
            description="Rebuild a collection's index (from stored or recomputed embeddings) "
            "into a new snapshot that serving Matchers swap in.",
            timeout_s=3600,
            max_attempts=2,
        )
    )
