"""The Matcher deployment: serves busque.index.live.LiveIndex, kept in sync in the background."""

from __future__ import annotations

import asyncio
import logging

from ray import serve
from ray.serve.handle import DeploymentHandle

from busque.index.live import LiveIndex
from busque.media.catalog import Catalog
from busque.serve.runtime import Runtime

logger = logging.getLogger("busque.index")


@serve.deployment(name="Matcher")
class Matcher:
    async def __init__(self, settings: dict, embedder: DeploymentHandle):
        self.runtime = Runtime(settings)
        dim = (await embedder.info.remote())["dim"]
        cfg = self.runtime.settings.index
        self.live = LiveIndex(
            Catalog(self.runtime.engine),
            self.runtime.objects,
            dim,
            snapshot_every=cfg.snapshot_every,
            keep_snapshots=cfg.keep_snapshots,
            index_options={
                "w_visual": cfg.w_visual,
                "w_phash": 1 - cfg.w_visual,
                "vector_options": {"kind": cfg.vector_index},
            },
        )
        self._sync = asyncio.create_task(self._sync_loop(cfg.sync_s))

    async def _sync_loop(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await asyncio.to_thread(self.live.sync)
            except Exception:
                logger.exception("index sync failed")

    async def add(self, tenant, collection, index_id, vector, phash, sha256) -> None:
        await asyncio.to_thread(self.live.add, tenant, collection, index_id, vector, phash, sha256)

    async def remove(self, tenant, collection, index_id) -> None:
        await asyncio.to_thread(self.live.remove, tenant, collection, index_id)

    async def search(self, tenant: str, collection: str, **query) -> list[dict]:
        return await asyncio.to_thread(self.live.search, tenant, collection, **query)

    async def near_groups(self, tenant: str, collection: str, radius: int) -> list[list[int]]:
        return await asyncio.to_thread(self.live.near_groups, tenant, collection, radius)

    async def snapshot(self, tenant: str, collection: str) -> str:
        return await asyncio.to_thread(self.live.save, tenant, collection)
