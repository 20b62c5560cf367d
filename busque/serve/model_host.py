"""A model deployment: hosts the catalog's models that name this deployment and runs their jobs.

Heavy models (embeddings, generation, faces) get deployments of their own with their own
resources; light ones can share one. Models load lazily, on their first job.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor

from ray import serve

from busque.jobs.events import Failure
from busque.jobs.runner import run_model_job
from busque.models.base import Model
from busque.serve.replica import replica_runtime

logger = logging.getLogger("busque.models")


@serve.deployment(name="ModelHost")
class ModelHost:
    def __init__(self, settings: dict, deployment: str):
        self.runtime = replica_runtime(settings)
        self.deployment = deployment
        self.specs = {
            spec.id: spec for spec in self.runtime.registry if spec.deployment == deployment
        }
        self.models: dict[str, Model] = {}
        # Threads, not processes: a hung model holds one thread, never the replica's event loop.
        self.executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix=deployment)

    def _model(self, model_id: str) -> Model:
        if model_id not in self.models:
            self.models[model_id] = self.specs[model_id].factory(self.runtime)
        return self.models[model_id]

    async def run_job(self, job: dict):
        if job["model"] not in self.specs:
            yield Failure(
                "unknown_model", f"deployment {self.deployment} does not serve {job['model']!r}"
            )
            return
        async for event in run_model_job(
            self._model(job["model"]), job, self.executor, self.runtime.objects
        ):
            yield event

    def pid(self) -> int:
        return os.getpid()
