"""The Embedder deployment: image (and, with CLIP, text) embeddings, batched with @serve.batch.

Callers send one encoded image per call (a normalised JPEG, a query upload); Serve gathers
concurrent calls into one forward pass (up to `embedder.batch_size`, waiting at most
`embedder.batch_wait_s` to fill a batch; with the default 0 a batch is what queued while the
previous forward pass ran).
"""

from __future__ import annotations

import asyncio

import numpy as np
from ray import serve

from busque.media.decode import MediaError, decode_reduced
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
        self.embed.set_max_batch_size(cfg.batch_size)
        self.embed.set_batch_wait_timeout_s(cfg.batch_wait_s)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.0)
    async def embed(self, images: list[bytes]) -> list[dict]:
        """Each image: encoded bytes (decoded here, JPEGs at reduced scale) -> {"vector",
        "labels"}, or {"error": {"status", "code", "message"}} for bytes that are not a usable
        image (the rest of the batch is embedded all the same)."""
        return await asyncio.to_thread(self._analyze, images)

    def _analyze(self, images: list[bytes]) -> list[dict]:
        side, max_pixels = self.model.source_side, self.runtime.settings.media.max_pixels
        out: list[dict] = []
        decoded = []  # (index in out, pixels)
        for data in images:
            try:
                pixels = decode_reduced(data, min_side=side, max_pixels=max_pixels)
                decoded.append((len(out), pixels))
                out.append({})
            except MediaError as exc:
                out.append({"error": {"status": exc.status, "code": exc.code, "message": str(exc)}})
        if decoded:
            vectors, labels = self.model.analyze([pixels for _, pixels in decoded], 5)
            for (i, _), vector, top in zip(decoded, vectors, labels, strict=True):
                out[i] = {"vector": vector, "labels": top}
        return out

    async def embed_text(self, text: str) -> np.ndarray:
        return (await asyncio.to_thread(self.model.embed_texts, [text]))[0]

    def info(self) -> dict:
        return self.model.describe()
