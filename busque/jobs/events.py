"""The job-event protocol: what a model deployment streams to the dispatcher for one attempt of a
job, and the one pump every streaming deployment uses to produce that stream.

A stream is any number of Progress, Output and Artifact events, then one Result or Failure.
Ray pickles these dataclasses across the DeploymentHandle stream as they are. The dispatcher
turns them into stored job events (job.progress, job.output, job.result, ...) and states.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Progress:
    percent: float
    message: str | None = None


@dataclass(frozen=True)
class Output:
    """A piece of streamed output (e.g. {"text": ...} for generated tokens)."""

    chunk: Any


@dataclass(frozen=True)
class Artifact:
    """A file the job stored in the object store."""

    name: str
    object_key: str
    content_type: str
    size: int

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "object_key": self.object_key,
            "content_type": self.content_type,
            "size": self.size,
        }


@dataclass(frozen=True)
class Result:
    result: Any


@dataclass(frozen=True)
class Failure:
    """The attempt failed with a stable code; retryable ones are tried again (code "canceled":
    the job was canceled)."""

    code: str
    message: str
    retryable: bool = False


CANCELED = Failure("canceled", "canceled")

JobEvent = Progress | Output | Artifact | Result | Failure
Emit = Callable[[Any], None]


async def pump(work: Callable[[Emit], Awaitable[Any]]) -> AsyncIterator[Any]:
    """Run `work(emit)` and yield what it emits, as it comes (emit is safe to call from any
    thread), then what it returns (or raise what it raised). Closing the iterator early cancels
    the work's task."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    def emit(item: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    task = asyncio.ensure_future(work(emit))
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield getter.result()
                continue
            getter.cancel()
            # what was emitted before the work finished (a thread's emit is queued on the loop
            # before the thread's own completion is)
            while not queue.empty():
                yield queue.get_nowait()
            break
        yield task.result()
    finally:
        task.cancel()
