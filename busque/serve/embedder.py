"""The Embedder deployment: image (and, with CLIP, text) embeddings, batched with @serve.batch.

Callers send one encoded image per call (a normalised JPEG, a query upload), and ask for its
pHash too when they lack it (a search query); Serve gathers
concurrent calls into one forward pass (up to `embedder.batch_size`, waiting at most
`embedder.batch_wait_s` to fill a batch; with the default 0 a batch is what queued while the
previous forward pass ran).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from ray import serve

from busque.media.decode import MediaError, decode_reduced
from busque.media.phash import phash_bytes
from busque.models.embedding import create_embedder
from busque.serve.runtime import Runtime


def build_embedder(settings):
    cfg = settings.embedder
    options = {"device": cfg.device}
    if cfg.backend == "clip":
        options["model_path"] = cfg.model_path
    return create_embedder(cfg.backend, **options)


@serve.deployment(name="Embedder")
class Embedder:
    def __init__(self, settings: dict):
        self.runtime = Runtime(settings)
        cfg = self.runtime.settings.embedder
        self.model = build_embedder(self.runtime.settings)
        self.model.load()
        # The model always runs on this one thread (batches run one at a time anyway): its
        # allocator arena and oneDNN's per-thread scratch stay warm, where asyncio.to_thread
        # hands each batch to whichever pool thread is free. A query at concurrency 1: 15.1 vs
        # 15.8 ms of model work, 30.0 vs 31.3-33.8 ms at the client.
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self.embed.set_max_batch_size(cfg.batch_size)
        self.embed.set_batch_wait_timeout_s(cfg.batch_wait_s)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.0)
    async def embed(self, images: list[bytes], with_phash: list[bool]) -> list[dict]:
        """Each image: encoded bytes (decoded here, JPEGs at reduced scale) -> {"vector",
        "labels"} (and "phash", hex, when asked), or {"error": {"status", "code", "message"}}
        for bytes that are not a usable image (the rest of the batch is embedded all the same).

        A search query's pHash is computed here rather than in the Gateway beside this call (a
        thread hashing there held the Gateway's GIL while its event loop sent the request: 1.3 ms
        at concurrency 1), on a second thread while the model runs."""
        wanted = [data if phash else None for data, phash in zip(images, with_phash, strict=True)]
        out, hashes = await asyncio.gather(
            self._on_model_thread(self._analyze, images), asyncio.to_thread(self._phashes, wanted)
        )
        for i, phash in enumerate(hashes):
            if isinstance(phash, dict):  # an error
                out[i] = phash
            elif phash is not None and "error" not in out[i]:
                out[i]["phash"] = phash
        return out

    def _analyze(self, images: list[bytes]) -> list[dict]:
        side, max_pixels = self.model.source_side, self.runtime.settings.media.max_pixels
        out: list[dict] = []
        decoded = []  # (index in out, pixels)
        for data in images:
            try:
                pixels = decode_reduced(data, min_side=side, max_pixels=max_pixels)
            except MediaError as exc:
                out.append(_error(exc))
                continue
            decoded.append((len(out), pixels))
            out.append({})
        if decoded:
            vectors, labels = self.model.analyze([pixels for _, pixels in decoded], 5)
            for (i, _), vector, top in zip(decoded, vectors, labels, strict=True):
                out[i].update(vector=vector, labels=top)
        return out

    def _phashes(self, images: list[bytes | None]) -> list[str | dict | None]:
        """Each image's pHash (hex), or its error, or None where not asked."""
        max_pixels = self.runtime.settings.media.max_pixels
        hashes: list[str | dict | None] = []
        for data in images:
            try:
                hashes.append(None if data is None else phash_bytes(data, max_pixels=max_pixels))
            except MediaError as exc:
                hashes.append(_error(exc))
        return hashes

    async def embed_text(self, text: str) -> np.ndarray:
        return (await self._on_model_thread(self.model.embed_texts, [text]))[0]

    def _on_model_thread(self, fn, *args):
        return asyncio.get_running_loop().run_in_executor(self._model_thread, fn, *args)

    def info(self) -> dict:
        return self.model.describe()


def _error(exc: MediaError) -> dict:
    return {"error": {"status": exc.status, "code": exc.code, "message": str(exc)}}
