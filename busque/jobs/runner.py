"""Run one job's model call in a worker thread and turn what it reports into a stream of events.

The stream is what a model deployment's `run_job` yields to the dispatcher:
  {"type": "progress", "percent", "message"} | {"type": "output", "chunk"}
  {"type": "artifact", "name", "object_key", "content_type", "size"}
  {"type": "result", "result"} | {"type": "error", "code", "message", "retryable"}
Closing the stream (the dispatcher canceled the call) sets the job's cancel flag; the model sees
it at its next `ctx.check_cancelled()`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import traceback
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from typing import Any

from busque.models.base import JobCanceled, Model, ModelError
from busque.storage import InvalidKey, ObjectNotFound, ObjectStore, tenant_key, validate_key

logger = logging.getLogger("busque.jobs")


class ThreadJobContext:
    """The JobContext a model sees; safe to call from the model's thread."""

    def __init__(
        self,
        job: dict,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue,
        objects: ObjectStore | None,
    ):
        self.job_id = job["id"]
        self.attempt = job["attempt"]
        self.tenant_id = job["tenant_id"]
        self.params = job.get("params") or {}
        self._loop = loop
        self._queue = queue
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

    def _send(self, event: dict) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, event)

    def progress(self, percent: float, message: str | None = None) -> None:
        self._send({"type": "progress", "percent": float(percent), "message": message})

    def output(self, chunk: Any) -> None:
        self._send({"type": "output", "chunk": chunk})

    def artifact(self, name: str, data: bytes, content_type: str) -> dict:
        if self._objects is None:
            raise RuntimeError("this deployment has no object store for artifacts")
        key = tenant_key(self.tenant_id, "artifacts", self.job_id, name)
        self._objects.put(key, data, content_type)
        info = {"name": name, "object_key": key, "content_type": content_type, "size": len(data)}
        self._send({"type": "artifact", **info})
        return info

    def read_object(self, key: str) -> bytes:
        if self._objects is None:
            raise RuntimeError("this deployment has no object store")
        try:
            return self._objects.get(validate_key(key, self.tenant_id))
        except (InvalidKey, ObjectNotFound):
            raise ModelError("object_not_found", f"no object {key!r}") from None


_DONE = object()


async def run_model_job(
    model: Model, job: dict, executor: Executor, objects: ObjectStore | None = None
) -> AsyncIterator[dict]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    ctx = ThreadJobContext(job, loop, queue, objects)

    def call() -> dict:
        try:
            return {"type": "result", "result": model.predict(job["input"], ctx)}
        except JobCanceled:
            return {"type": "error", "code": "canceled", "message": "canceled", "retryable": False}
        except ModelError as exc:
            return {
                "type": "error",
                "code": exc.code,
                "message": str(exc),
                "retryable": exc.retryable,
            }
        except Exception as exc:  # a model bug: report it, keep the replica alive
            logger.error(
                "model %s failed: %s",
                job["model"],
                traceback.format_exc(),
                extra={"busque_job_id": job["id"]},
            )
            return {
                "type": "error",
                "code": "model_error",
                "message": f"{type(exc).__name__}: {exc}",
                "retryable": False,
            }
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, _DONE)

    future = loop.run_in_executor(executor, call)
    try:
        while (event := await queue.get()) is not _DONE:
            yield event
        yield await future
    finally:
        ctx.cancel()  # a no-op when finished; stops the model when the stream was closed early
