"""Pipelines as jobs: `POST /v1/jobs {"model": "reindex", "input": {"collection": ...}}` and
`{"model": "backfill", "input": {"source": ...}}` run the pipelines from a ModelHost replica
(Ray Data submits its work to the same cluster), their stages reported as job.progress events."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from busque.config import Settings
from busque.media.catalog import COLLECTION_PATTERN
from busque.models.base import JobContext, Model, ModelError
from busque.models.registry import ModelRegistry, ModelSpec
from pipelines.backfill.plan import allowed_source, missing_folder
from pipelines.backfill.run import backfill
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


class BackfillInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(
        min_length=1,
        max_length=2000,
        description="a folder or s3://bucket/prefix inside pipelines.backfill_sources",
    )
    collection: str | None = Field(None, pattern=COLLECTION_PATTERN)
    library: str | None = Field(None, min_length=1, max_length=200)
    exclude: list[str] = Field(
        default_factory=list, max_length=50, description="more patterns to skip (fnmatch)"
    )
    faces: StrictBool = True
    embeddings: StrictBool = True
    dry_run: StrictBool = False


LISTED = 100  # the entries of each of the report's lists a job's result keeps


def summarized(report: dict) -> dict:
    """The report as a job's result: every count, and each list cut to its first LISTED
    entries beside its length (the CLI's --report has them all)."""
    out = {}
    for key, value in report.items():
        if isinstance(value, list):
            out[key] = value[:LISTED]
            out[f"{key}_total"] = len(value)
        else:
            out[key] = value
    return out


class BackfillJob(Model):
    """A backfill pass as a job: progress per file inspected (0-40%) and per batch catalogued
    (40-100%), and a cancel stops it at the next of those (committed batches stay: a rerun
    resumes)."""

    def __init__(self, runtime):
        super().__init__()
        self.runtime = runtime

    def _predict(self, inputs: dict[str, Any], ctx: JobContext) -> dict:
        roots = self.runtime.settings.pipelines.backfill_sources
        if not allowed_source(inputs["source"], roots):
            raise ModelError("source_not_allowed", f"{inputs['source']!r} is not a backfill source")
        stages = {"inspect": (0.0, 40.0), "upload": (40.0, 100.0)}

        def on_progress(stage: str, done: int, total: int) -> None:
            ctx.check_cancelled()
            low, high = stages[stage]
            ctx.progress(low + (high - low) * done / max(total, 1), f"{stage} {done}/{total}")

        report = backfill(
            self.runtime,
            ctx.tenant_id,
            inputs["source"],
            collection=inputs["collection"],
            library=inputs["library"],
            dry_run=inputs["dry_run"],
            embeddings=inputs["embeddings"],
            faces=inputs["faces"],
            exclude=inputs["exclude"],
            progress=False,
            on_progress=on_progress,
        )
        return summarized(report)


def _backfill_admission(settings: Settings):
    def admit(inputs: dict, tenant_id: str, objects: Any) -> None:
        if not allowed_source(inputs["source"], settings.pipelines.backfill_sources):
            raise ModelError(
                "source_not_allowed",
                f"{inputs['source']!r} is not inside pipelines.backfill_sources",
            )
        if not inputs["source"].startswith("s3://") and missing_folder(inputs["source"]):
            raise ModelError("source_not_found", f"no such folder: {inputs['source']}")

    return admit


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
    registry.register(
        ModelSpec(
            id="backfill",
            kind="pipeline",
            backend="ray-data",
            factory=BackfillJob,
            input_schema=BackfillInput,
            deployment="pipelines",
            description="Backfill a library (a folder or S3 prefix inside "
            "pipelines.backfill_sources) into a collection of the tenant: as `busque backfill`, "
            "with progress per file and per batch, cancel, webhooks; the report is the result.",
            timeout_s=86400,
            max_attempts=2,
            unavailable=lambda s: (
                None
                if s.pipelines.backfill_sources
                else "no backfill sources configured: set pipelines.backfill_sources"
            ),
            admit=_backfill_admission(settings),
        )
    )
