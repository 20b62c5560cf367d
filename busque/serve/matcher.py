"""The Matcher deployment: serves busque.index.live.LiveIndex, kept in sync in the background."""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from ray import serve
from ray.serve.handle import DeploymentHandle

from busque.serve.metrics import ray_metrics
from busque.serve.replica import replica_runtime

logger = logging.getLogger("busque.index")


@serve.deployment(name="Matcher")
class Matcher:
    async def __init__(self, settings: dict, embedder: DeploymentHandle):
        self.runtime = replica_runtime(settings)
        dim = (await embedder.info.remote())["dim"]
        self.live = self.runtime.live_index(dim)
        self.metrics = ray_metrics()
        self._sync = asyncio.create_task(self._sync_loop(self.runtime.settings.index.sync_s))

    async def _sync_loop(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await asyncio.to_thread(self.live.sync)
            except Exception:
                logger.exception("index sync failed")
            try:  # on a thread: the index's lock may be held while a collection opens
                sizes = await asyncio.to_thread(self.live.sizes)
            except Exception:
                logger.exception("index sizes failed")
                continue
            for (tenant, collection), vectors in sizes.items():
                self.metrics.index_size(tenant, collection, vectors)

    async def add(self, tenant, collection, index_id, vector, phash, sha256) -> None:
        await asyncio.to_thread(self.live.add, tenant, collection, index_id, vector, phash, sha256)

    async def remove(self, tenant, collection, index_id) -> None:
        await asyncio.to_thread(self.live.remove, tenant, collection, index_id)

    async def search(self, tenant: str, collection: str, **query) -> list[dict]:
        return await asyncio.to_thread(self.live.search, tenant, collection, **query)

    async def duplicate_pairs(
        self, tenant: str, collection: str, radius: int, min_cosine: float | None, **options
    ) -> dict:
        """busque.index.live.LiveIndex.duplicate_pairs_answer (options: known_version, wait_s)."""
        answer = partial(self.live.duplicate_pairs_answer, **options)
        return await asyncio.to_thread(answer, tenant, collection, radius, min_cosine)

    async def snapshot(self, tenant: str, collection: str) -> str:
        return await asyncio.to_thread(self.live.save, tenant, collection)
