"""What the API's routes share within one gateway replica."""

from __future__ import annotations

import asyncio
import logging

from busque.api.auth import Authenticator
from busque.api.rate_limit import RateLimiter
from busque.api.slots import TenantSlots
from busque.db.notify import watch_commits
from busque.jobs.event_tail import EventTail
from busque.runtime import Runtime

logger = logging.getLogger("busque.api")


class ApiContext:
    def __init__(
        self,
        runtime: Runtime,
        dispatcher=None,
        embedder=None,
        matcher=None,
        face_analyzer=None,
        text_generator=None,
        text_embedder=None,
        application_running=None,
    ):
        self.runtime = runtime
        self.settings = runtime.settings
        self.jobs = runtime.jobs
        self.keys = runtime.keys
        self.objects = runtime.objects
        self.registry = runtime.registry
        self.catalog = runtime.catalog
        self.janitor = runtime.janitor
        quotas = runtime.settings.quotas
        self.streams = TenantSlots(
            runtime.settings.events.max_streams_per_tenant,
            "too_many_streams",
            "event streams open for this tenant",
        )
        self.bodies = TenantSlots(
            quotas.bodies,
            "too_many_uploads",
            "request bodies arriving (for this tenant, or without a key)",
        )
        self.rates = RateLimiter(runtime.rate_buckets)
        self.embedder = embedder  # DeploymentHandles
        self.matcher = matcher
        self.face_analyzer = face_analyzer  # None when face analysis is not deployed
        self.text_generator = text_generator  # None when no text model is available
        self.text_embedder = text_embedder  # None when no text-embedding model is available
        self.collections = runtime.collections
        self.resolutions = runtime.resolutions
        self.duplicate_reviews = runtime.duplicate_reviews
        self.outbox = runtime.outbox
        self.faces = runtime.faces
        self.face_index = runtime.face_index
        self.auth = Authenticator(runtime.keys, runtime.settings.auth.cache_s)
        self.dispatcher = dispatcher  # a DeploymentHandle, or None outside Serve
        # async () -> None, raising while a deployment is still coming up; None outside Serve
        self.application_running = application_running
        # Commits are noticed at once (LISTEN/NOTIFY on PostgreSQL, data_version on SQLite):
        # polling is only a fallback, and the dispatcher watches for new jobs itself.
        self.tail = EventTail(runtime.jobs, runtime.settings.events.poll_s)
        watcher = watch_commits(
            runtime.settings.database.url, "busque_events", self.tail.nudge_threadsafe
        )
        self.notified = watcher is not None
        self._waking: asyncio.Task | None = None
        self._wake_again = False

    def wake_dispatcher(self) -> None:
        """Tell the dispatcher new work is queued. While one wake call is in flight, later jobs
        ask for one more after it (that call's claim may have run before they committed)."""
        if self.dispatcher is None or self.notified:
            return
        if self._waking is not None and not self._waking.done():
            self._wake_again = True
            return

        async def wake():
            while True:
                self._wake_again = False
                try:
                    await self.dispatcher.wake.remote()
                except Exception:  # it polls anyway; a missed wake only adds latency
                    logger.warning("could not wake the dispatcher", exc_info=True)
                if not self._wake_again:
                    return

        self._waking = asyncio.get_running_loop().create_task(wake())

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
