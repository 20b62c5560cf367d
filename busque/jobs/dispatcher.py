"""The dispatcher loop: claim queued jobs, run them, keep their leases alive, record outcomes.

Ray-free: it is given `call(deployment, job)`, which opens a model deployment's event stream
(see busque.jobs.runner). Several dispatchers may run at once; the store's atomic claim and
fenced writes keep each job with exactly one live attempt.

Timeouts go through the lease: past its deadline an attempt is no longer renewed and its call is
abandoned; once the lease runs out the reaper (in any dispatcher) retries the job or, after
max attempts, fails it with code `timeout`. A dispatcher that dies is handled the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field

from busque.config import Settings
from busque.jobs.deliverer import PayloadFormat, WebhookDeliverer
from busque.jobs.events import Artifact, Failure, JobEvent, Output, Progress, Result
from busque.jobs.outbox import WebhookOutbox
from busque.jobs.store import TERMINAL, JobStore
from busque.metrics import NO_METRICS, Metrics

logger = logging.getLogger("busque.dispatcher")

Call = Callable[[str, dict], AsyncIterator[dict]]


@dataclass(frozen=True)
class Route:
    """Where a model's jobs run, and for how long at most (None: jobs.default_timeout_s)."""

    deployment: str
    timeout_s: float | None = None


@dataclass
class Attempt:
    job: dict
    deadline: float
    task: asyncio.Task | None = None
    output_index: int = 0
    abandoned: bool = False
    cancel_requested: bool = False
    started: float = field(default_factory=time.monotonic)


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        routes: dict[str, Route],
        call: Call,
        outbox: WebhookOutbox,
        metrics: Metrics = NO_METRICS,
        webhook_formats: Mapping[str, PayloadFormat] | None = None,
    ):
        self.settings = settings
        self.jobs = settings.jobs
        self.store = store
        self.routes = routes
        self.call = call
        self.outbox = outbox
        self.metrics = metrics
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.running: dict[str, Attempt] = {}
        self.deliverer = WebhookDeliverer(settings.webhooks, outbox, metrics, webhook_formats)
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task] = []
        self._results: list[tuple[str, int, object, asyncio.Future]] = []
        self._results_writer: asyncio.Task | None = None

    # ---- lifecycle ----

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="claim"),
            asyncio.create_task(self._lease_loop(), name="lease"),
            asyncio.create_task(self.deliverer.run(), name="webhooks"),
        ]

    async def stop(self, release: bool = True) -> None:
        """Stop claiming; give running jobs back to the queue so another dispatcher resumes them
        at once instead of after their lease runs out."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for attempt in list(self.running.values()):
            attempt.abandoned = True
            if attempt.task:
                attempt.task.cancel()
        if release:
            released = await asyncio.to_thread(self.store.release, self.owner)
            logger.info("dispatcher %s released %d running jobs", self.owner, released)

    def wake(self) -> None:
        self._wake.set()

    def cancel(self, job_id: str) -> bool:
        attempt = self.running.get(job_id)
        if attempt is None or attempt.task is None:
            return False
        if not attempt.cancel_requested:  # once: a second Task.cancel() would also cancel the
            attempt.cancel_requested = True  # handler's write of the canceled state
            attempt.task.cancel()
        return True

    # ---- claiming and running ----

    async def _claim_loop(self) -> None:
        next_reap = 0.0
        while not self._stopping:
            try:
                if time.monotonic() >= next_reap:  # on a timer, not on every wake
                    next_reap = time.monotonic() + min(self.jobs.heartbeat_s, self.jobs.lease_s / 4)
                    await asyncio.to_thread(self._reap)
                free = self.jobs.max_running - len(self.running)
                claimed = []
                if free > 0:
                    limit = min(free, self.jobs.claim_batch)
                    claimed = await asyncio.to_thread(self.store.claim, self.owner, limit)
                    for job in claimed:
                        self._start(job)
                if len(claimed) == self.jobs.claim_batch:
                    continue  # more may be waiting: claim again at once
            except Exception:
                logger.exception("claim loop error")
            await asyncio.sleep(0.002)  # let a burst of new jobs gather into one claim
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.jobs.poll_s)

    def _reap(self) -> None:
        for job_id, state in self.store.reap_expired():
            logger.warning(
                "lease of job %s expired: now %s", job_id, state, extra={"busque_job_id": job_id}
            )
            if state in TERMINAL and (job := self.store.get(job_id)) is not None:
                self.metrics.job_finished(job["model"], state, None)

    def _start(self, job: dict) -> None:
        route = self.routes.get(job["model"])
        timeout = (
            job["timeout_s"] or (route.timeout_s if route else None) or self.jobs.default_timeout_s
        )
        attempt = Attempt(job=job, deadline=time.monotonic() + timeout)
        self.running[job["id"]] = attempt
        if job["attempt"] == 1 and job.get("started_at") and job.get("created_at"):
            self.metrics.job_started(job["model"], job["started_at"] - job["created_at"])
        attempt.task = asyncio.create_task(self._run(attempt), name=f"job {job['id']}")

    async def _run(self, attempt: Attempt) -> None:
        job = attempt.job
        job_id, number = job["id"], job["attempt"]
        route = self.routes.get(job["model"])
        log_extra = {"busque_job_id": job_id, "attempt": number, "model": job["model"]}
        final_state = None
        stream = None
        try:
            if route is None:
                final_state = await self._fail(
                    job, "unknown_model", f"no model {job['model']!r}", False
                )
                return
            logger.info("running job %s attempt %d", job_id, number, extra=log_extra)
            stream = self.call(route.deployment, job)
            async for event in stream:
                final_state = await self._record(attempt, event)
                if final_state:
                    break
            if final_state is None:
                final_state = await self._fail(
                    job, "worker_error", "the model ended without a result", True
                )
        except asyncio.CancelledError:
            if hasattr(stream, "cancel"):
                stream.cancel()  # stop the model's side too (it sees ctx.cancelled)
            if attempt.cancel_requested:
                final_state = (
                    await asyncio.to_thread(self.store.cancel_attempt, job_id, number)
                    and "canceled"
                )
            # else: shutting down or past the deadline; the lease/reaper or release decides.
        except Exception as exc:  # the call itself failed: replica died, unreachable, overloaded
            logger.warning(
                "job %s attempt %d: worker failed: %r", job_id, number, exc, extra=log_extra
            )
            final_state = await self._fail(job, "worker_died", f"{type(exc).__name__}: {exc}", True)
        finally:
            self.running.pop(job_id, None)
            self._wake.set()  # a slot is free
            if final_state in TERMINAL:
                self.metrics.job_finished(
                    job["model"], final_state, time.monotonic() - attempt.started
                )

    async def _record(self, attempt: Attempt, event: JobEvent) -> str | None:
        job = attempt.job
        job_id, number = job["id"], job["attempt"]
        match event:
            case Progress(percent, message):
                await asyncio.to_thread(self.store.progress, job_id, number, percent, message)
            case Output(chunk):
                await asyncio.to_thread(
                    self.store.output, job_id, number, [chunk], attempt.output_index
                )
                attempt.output_index += 1
            case Artifact():
                await asyncio.to_thread(self.store.add_artifact, job_id, number, event.info())
            case Result(result):
                ok = await self._succeed(job_id, number, result)
                return "succeeded" if ok else "stale"
            case Failure(code="canceled"):
                ok = await asyncio.to_thread(self.store.cancel_attempt, job_id, number)
                return "canceled" if ok else "stale"
            case Failure(code, message, retryable):
                return await self._fail(job, code, message, retryable)
            case _:
                logger.warning("job %s: unknown event %r ignored", job_id, event)
        return None

    async def _succeed(self, job_id: str, attempt: int, result) -> bool:
        """Results that arrive together are committed together (fewer transactions under load)."""
        landed = asyncio.get_running_loop().create_future()
        self._results.append((job_id, attempt, result, landed))
        if self._results_writer is None or self._results_writer.done():
            self._results_writer = asyncio.create_task(self._write_results())
        return await landed

    async def _write_results(self) -> None:
        while self._results:
            batch, self._results = self._results, []
            try:
                oks = await asyncio.to_thread(
                    self.store.succeed_many, [(j, a, r) for j, a, r, _ in batch]
                )
                for (*_, landed), ok in zip(batch, oks, strict=True):
                    landed.set_result(ok)
            except Exception as exc:
                for *_, landed in batch:
                    landed.set_exception(exc)

    async def _fail(self, job: dict, code: str, message: str, retryable: bool) -> str:
        state = await asyncio.to_thread(
            self.store.fail_attempt, job["id"], job["attempt"], code, message, retryable
        )
        return state or "stale"

    # ---- leases ----

    async def _lease_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.jobs.heartbeat_s)
            try:
                now = time.monotonic()
                for attempt in list(self.running.values()):
                    if now > attempt.deadline and not attempt.abandoned:
                        logger.warning(
                            "job %s attempt %d passed its deadline; abandoning it",
                            attempt.job["id"],
                            attempt.job["attempt"],
                            extra={"busque_job_id": attempt.job["id"]},
                        )
                        attempt.abandoned = True
                        if attempt.task:
                            attempt.task.cancel()
                live = {jid: a.job["attempt"] for jid, a in self.running.items() if not a.abandoned}
                for job_id in await asyncio.to_thread(self.store.heartbeat, self.owner, live):
                    self.cancel(job_id)
            except Exception:
                logger.exception("lease loop error")
