"""The Dispatcher deployment: wraps busque.jobs.dispatcher.Dispatcher and reaches the model
deployments through DeploymentHandles."""

from __future__ import annotations

import asyncio
import logging

from ray import serve
from ray.serve.handle import DeploymentHandle

from busque import doors
from busque.db.notify import watch_commits
from busque.jobs.dispatcher import Dispatcher
from busque.serve.metrics import ray_metrics
from busque.serve.replica import replica_runtime

logger = logging.getLogger("busque.dispatcher")


@serve.deployment(name="Dispatcher", graceful_shutdown_timeout_s=20)
class DispatcherDeployment:
    async def __init__(self, settings: dict, model_handles: dict[str, DeploymentHandle]):
        self.runtime = replica_runtime(settings)
        self.handles = model_handles
        self.dispatcher = Dispatcher(
            self.runtime.settings,
            self.runtime.jobs,
            self.runtime.routes(),
            self._call,
            self.runtime.outbox,
            ray_metrics(),
            doors.webhook_formats(
                self.runtime.jobs, self.runtime.objects, self.runtime.settings.storage.url_ttl_s
            ),
        )
        self.dispatcher.start()
        loop = asyncio.get_running_loop()
        watch_commits(  # new jobs wake it the moment they commit
            self.runtime.settings.database.url,
            "busque_jobs",
            lambda: loop.call_soon_threadsafe(self.dispatcher.wake),
        )
        self._janitor = asyncio.create_task(self._janitor_loop())
        logger.info("dispatcher %s started", self.dispatcher.owner)

    async def _janitor_loop(self) -> None:
        """Deletes what the object store refused to delete before (busque.media.janitor) and
        purges the trash of what is older than media.trash_days (busque.media.resolve)."""
        media = self.runtime.settings.media
        while True:
            await asyncio.sleep(media.janitor_s)
            try:
                await asyncio.to_thread(self.runtime.janitor.sweep)
                await asyncio.to_thread(
                    self.runtime.janitor.remove_orphan_rows, media.orphan_after_s
                )
                await asyncio.to_thread(self.runtime.resolutions.purge_expired, media.trash_days)
            except Exception:
                logger.exception("janitor failed")

    def _call(self, deployment: str, job: dict):
        handle = self.handles.get(deployment)
        if handle is None:
            raise LookupError(f"no deployment {deployment!r} serves model {job['model']!r}")
        return handle.options(stream=True).run_job.remote(job)

    async def wake(self) -> None:
        self.dispatcher.wake()

    async def cancel(self, job_id: str) -> bool:
        return self.dispatcher.cancel(job_id)

    async def status(self) -> dict:
        """For /readyz: the dispatcher answers and reaches the job store from its own node."""
        await asyncio.to_thread(self.runtime.jobs.ping)
        return {"owner": self.dispatcher.owner, "running": sorted(self.dispatcher.running)}

    async def __del__(self):
        self._janitor.cancel()
        await self.dispatcher.stop(release=True)
