"""What the API's routes share within one gateway replica."""

from __future__ import annotations

import asyncio
import logging

from busque.api.auth import Authenticator
from busque.jobs.event_tail import EventTail
from busque.serve.runtime import Runtime

logger = logging.getLogger("busque.api")


class ApiContext:
    def __init__(self, runtime: Runtime, dispatcher=None):
        self.runtime = runtime
        self.settings = runtime.settings
        self.jobs = runtime.jobs
        self.keys = runtime.keys
        self.objects = runtime.objects
        self.registry = runtime.registry
        self.auth = Authenticator(runtime.keys, runtime.settings.auth.cache_s)
        self.tail = EventTail(runtime.jobs, runtime.settings.events.poll_s)
        self.dispatcher = dispatcher  # a DeploymentHandle, or None outside Serve
        self._wake_pending = False

    def wake_dispatcher(self) -> None:
        """Tell the dispatcher new work is queued; calls in flight already cover later jobs."""
        if self.dispatcher is None or self._wake_pending:
            return
        self._wake_pending = True

        async def wake():
            try:
                await self.dispatcher.wake.remote()
            except Exception:  # it polls anyway; a missed wake only adds latency
                logger.warning("could not wake the dispatcher", exc_info=True)
            finally:
                self._wake_pending = False

        asyncio.get_running_loop().create_task(wake())

    def cancel_on_dispatcher(self, job_id: str) -> None:
        if self.dispatcher is None:
            return

        async def cancel():
            try:
                await self.dispatcher.cancel.remote(job_id)
            except Exception:  # the cancel flag in the database is picked up at the next heartbeat
                logger.warning("could not reach the dispatcher to cancel %s", job_id)

        asyncio.get_running_loop().create_task(cancel())

    async def dispatcher_status(self) -> dict:
        if self.dispatcher is None:
            raise RuntimeError("no dispatcher")
        return await self.dispatcher.status.remote()
