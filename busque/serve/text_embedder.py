"""The TextEmbedder deployment: sentence embeddings for `POST /v1/embeddings` (from the Gateway)
and text-embedding jobs (from the dispatcher), one model per replica.

The model runs on one thread of its own (a forward pass at a time), so the replica's event loop
stays free while it works.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from ray import serve

from busque.jobs.runner import run_model_job
from busque.serve.replica import replica_runtime


@serve.deployment(name="TextEmbedder")
class TextEmbedderDeployment:
    def __init__(self, settings: dict, model_id: str):
        self.runtime = replica_runtime(settings)
        self.model = self.runtime.registry.get(model_id).factory(self.runtime)
        self.model.load()
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")

    async def embed(self, texts: list[str]) -> dict:
        """{"vectors": (n, dim) float32 rows, L2-normalised, "tokens": per text}."""
        loop = asyncio.get_running_loop()
        vectors, tokens = await loop.run_in_executor(self._model_thread, self.model.embed, texts)
        return {"vectors": vectors, "tokens": tokens}

    async def run_job(self, job: dict):
        async for event in run_model_job(self.model, job, self._model_thread, self.runtime.objects):
            yield event

    def info(self) -> dict:
        return self.model.describe()
