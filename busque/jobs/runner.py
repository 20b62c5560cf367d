"""Run one job's model call in a worker thread and turn what it reports into a stream of events
(busque.jobs.events): what a ModelHost's `run_job` yields to the dispatcher. Closing the stream
(the dispatcher canceled the call) sets the job's cancel flag; the model sees it at its next
`ctx.check_cancelled()`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import traceback
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from typing import Any

from busque.db.engine import database_unavailable
from busque.jobs.events import (
    CANCELED,
    Artifact,
    Emit,
    Failure,
    JobEvent,
    Output,
    Progress,
    Result,
    pump,
)
from busque.models.base import JobCanceled, Model, ModelError
from busque.storage import (
    InvalidKey,
    ObjectNotFound,
    ObjectStore,
    storage_unavailable,
    tenant_key,
    validate_key,
)

logger = logging.getLogger("busque.jobs")


class ThreadJobContext:
    """The JobContext a model sees; safe to call from the model's thread."""

    def __init__(self, job: dict, emit: Emit, objects: ObjectStore | None):
        self.job_id = job["id"]
        self.attempt = job["attempt"]
        self.tenant_id = job["tenant_id"]
        self.params = job.get("params") or {}
        self._send = emit
        self._objects = objects
        self._cancelled = threading.Event()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        self._cancelled.set()

    def check_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise JobCanceled(self.job_id)

    def progress(self, percent: float, message: str | None = None) -> None:
        self._send(Progress(float(percent), message))

    def output(self, chunk: Any) -> None:
        self._send(Output(chunk))

    def artifact(self, name: str, data: bytes, content_type: str) -> dict:
        if self._objects is None:
            raise RuntimeError("this deployment has no object store for artifacts")
        key = tenant_key(self.tenant_id, "artifacts", self.job_id, name)
        self._objects.put(key, data, content_type)
        artifact = Artifact(name, key, content_type, len(data))
        self._send(artifact)
        return artifact.info()

    def read_object(self, key: str) -> bytes:
        if self._objects is None:
            raise RuntimeError("this deployment has no object store")
        try:
            return self._objects.get(validate_key(key, self.tenant_id))
        except (InvalidKey, ObjectNotFound):
            raise ModelError("object_not_found", f"no object {key!r}") from None


async def run_model_job(
    model: Model, job: dict, executor: Executor, objects: ObjectStore | None = None
) -> AsyncIterator[JobEvent]:
    contexts: list[ThreadJobContext] = []

    def call(ctx: ThreadJobContext) -> Result | Failure:
        try:
            return Result(model.predict(job["input"], ctx))
        except JobCanceled:
            return CANCELED
        except ModelError as exc:
            return Failure(exc.code, str(exc), exc.retryable)
        except Exception as exc:
            if storage_unavailable(exc) or database_unavailable(exc):  # not the model's fault
                return Failure("service_unavailable", f"{type(exc).__name__}: {exc}", True)
            # A model bug: report it, keep the replica alive.
            logger.error(
                "model %s failed: %s",
                job["model"],
                traceback.format_exc(),
                extra={"busque_job_id": job["id"]},
            )
            return Failure("model_error", f"{type(exc).__name__}: {exc}")

    def work(emit: Emit):
        ctx = ThreadJobContext(job, emit, objects)
        contexts.append(ctx)
        return asyncio.get_running_loop().run_in_executor(executor, call, ctx)

    try:
        async for event in pump(work):
            yield event
    finally:
        for ctx in contexts:  # a no-op when finished; stops the model when closed early
            ctx.cancel()
