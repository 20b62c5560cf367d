"""The Embedder deployment: image (and, with CLIP, text) embeddings, batched with @serve.batch.

Callers send one encoded image per call (a normalised JPEG, a query upload), and ask for its
pHash too when they lack it (a search query). Each call is prepared on its own thread of a small
pool (decode, the model's resize, the pHash: Pillow and numpy release the GIL), so many are
prepared at once while the model runs; Serve then gathers the prepared images into one forward
pass (up to `embedder.batch_size`, waiting at most `embedder.batch_wait_s` to fill a batch; with
the default 0 a batch is what queued while the previous forward pass ran).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from PIL import Image
from ray import serve

from busque.media.decode import MediaError, decode_reduced
from busque.media.phash import phash_bytes
from busque.serve.metrics import ray_metrics
from busque.serve.replica import replica_runtime


@serve.deployment(name="Embedder")
class Embedder:
    def __init__(self, settings: dict):
        self.runtime = replica_runtime(settings)
        cfg = self.runtime.settings.embedder
        self.model = self.runtime.new_embedder()
        self.model.load()
        self._prepare_pool = ThreadPoolExecutor(cfg.prepare_threads, thread_name_prefix="prepare")
        # The model always runs on this one thread (batches run one at a time anyway): its
        # allocator arena and oneDNN's per-thread scratch stay warm, where asyncio.to_thread
        # hands each batch to whichever pool thread is free. A query at concurrency 1: 15.1 vs
        # 15.8 ms of model work, 30.0 vs 31.3-33.8 ms at the client.
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self.metrics = ray_metrics()
        self._forward.set_max_batch_size(cfg.batch_size)
        self._forward.set_batch_wait_timeout_s(cfg.batch_wait_s)

    async def embed(self, image: bytes, with_phash: bool) -> dict:
        """Encoded bytes (decoded here, JPEGs at reduced scale) -> {"vector", "labels", "timing"}
        (and "phash", hex, when asked), or {"error": {"status", "code", "message"}} for bytes
        that are not a usable image. `timing`: this call's prepare and model milliseconds and
        the size of the batch it ran in.

        A search query's pHash is computed here rather than in the Gateway beside this call (a
        thread hashing there held the Gateway's GIL while its event loop sent the request: 1.3 ms
        at concurrency 1), on a second pool thread while the image is prepared and embedded."""
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        hashing = (
            loop.run_in_executor(self._prepare_pool, self._phash, image) if with_phash else None
        )
        prepared = await loop.run_in_executor(self._prepare_pool, self._prepare, image)
        prepare_ms = (time.perf_counter() - started) * 1000
        try:
            out = prepared if "error" in prepared else await self._forward(prepared["input"])
        finally:
            phash = await hashing if hashing is not None else None
        if "error" in out:
            return out
        if isinstance(phash, dict):  # an error (the decode for the model succeeded)
            return phash
        if phash is not None:
            out["phash"] = phash
        out["timing"]["prepare_ms"] = round(prepare_ms, 3)
        return out

    async def embed_pixels(self, image: Image.Image) -> dict:
        """A decoded image (busque.media.render.model_input: the ingest job's and the backfill's
        input) -> {"vector", "labels", "timing"}, through the same batches as `embed`."""
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        prepared = await loop.run_in_executor(self._prepare_pool, self.model.prepare, image)
        prepare_ms = (time.perf_counter() - started) * 1000
        out = await self._forward(prepared)
        out["timing"]["prepare_ms"] = round(prepare_ms, 3)
        return out

    def _prepare(self, data: bytes) -> dict[str, Any]:
        max_pixels = self.runtime.settings.media.max_pixels
        try:
            pixels = decode_reduced(data, min_side=self.model.source_side, max_pixels=max_pixels)
            return {"input": self.model.prepare(pixels)}
        except MediaError as exc:
            return _error(exc)

    def _phash(self, data: bytes) -> str | dict:
        try:
            return phash_bytes(data, max_pixels=self.runtime.settings.media.max_pixels)
        except MediaError as exc:
            return _error(exc)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.0)
    async def _forward(self, inputs: list[Any]) -> list[dict]:
        """One forward pass over the prepared images that queued (on the model thread)."""
        started = time.perf_counter()
        self.metrics.embed_batch(len(inputs))
        vectors, labels = await self._on_model_thread(self.model.analyze_prepared, inputs, 5)
        timing = {
            "model_ms": round((time.perf_counter() - started) * 1000, 3),
            "batch": len(inputs),
        }
        return [
            {"vector": vector, "labels": top, "timing": dict(timing)}
            for vector, top in zip(vectors, labels, strict=True)
        ]

    async def embed_text(self, text: str) -> np.ndarray:
        return (await self._on_model_thread(self.model.embed_texts, [text]))[0]

    def _on_model_thread(self, fn, *args):
        return asyncio.get_running_loop().run_in_executor(self._model_thread, fn, *args)

    def info(self) -> dict:
        return {**self.model.describe(), "source_side": self.model.source_side}


def _error(exc: MediaError) -> dict:
    return {"error": {"status": exc.status, "code": exc.code, "message": str(exc)}}
