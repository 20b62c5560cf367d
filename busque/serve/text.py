"""The TextGenerator deployment: text-generation jobs (from the dispatcher) and OpenAI-style chat
calls (from the Gateway) share one model and one BatchScheduler, so concurrent requests of both
kinds are decoded together.

Tokens reach callers as they are decoded; for jobs they are coalesced for up to
`COALESCE_S` so a fast model does not write one job event per token.
"""

from __future__ import annotations

import asyncio
import os
import time

from ray import serve

from busque.jobs.events import CANCELED, Emit, Output, Result, pump
from busque.models.text.generator import GenerationRequest, result_of
from busque.models.text.scheduler import BatchScheduler
from busque.serve.metrics import ray_metrics
from busque.serve.replica import replica_runtime

COALESCE_S = 0.05


@serve.deployment(name="TextGenerator")
class TextGeneratorDeployment:
    def __init__(self, settings: dict):
        self.runtime = replica_runtime(settings)
        cfg = self.runtime.settings.text
        self.spec = self.runtime.registry.get(cfg.model)
        self.model = self.spec.factory(self.runtime)
        self.model.load()
        self.scheduler = BatchScheduler(self.model, cfg.max_batch)
        self.metrics = ray_metrics()

    def info(self) -> dict:
        return {**self.model.describe(), "joined_running_batch": self.scheduler.joined}

    def pid(self) -> int:
        return os.getpid()

    async def _generate(self, inputs: dict, params: dict):
        """Yields text pieces as they are decoded, then the finished request."""
        cancelled = False
        started, first = time.monotonic(), True

        async def work(emit: Emit) -> GenerationRequest:
            request = await asyncio.to_thread(
                self.model.request, inputs, params, emit=emit, cancelled=lambda: cancelled
            )
            await asyncio.to_thread(self.scheduler.submit(request).wait)
            if request.error is not None:
                raise request.error
            return request

        try:
            async for item in pump(work):
                if isinstance(item, GenerationRequest):
                    self.metrics.tokens(self.spec.id, item.completion_tokens)
                elif first:
                    first = False
                    self.metrics.first_token(self.spec.id, time.monotonic() - started)
                yield item
        finally:
            cancelled = True  # the caller went away (or we are done): stop decoding this row

    async def run_job(self, job: dict):
        """The dispatcher's protocol (busque.jobs.events): output, then the result (or
        canceled)."""
        buffered, since = "", time.monotonic()
        async for item in self._generate(job["input"], job.get("params") or {}):
            if isinstance(item, GenerationRequest):
                if buffered:
                    yield Output({"text": buffered})
                yield CANCELED if item.finish_reason == "canceled" else Result(result_of(item))
                return
            buffered += item
            if time.monotonic() - since >= COALESCE_S:
                yield Output({"text": buffered})
                buffered, since = "", time.monotonic()

    async def chat(self, inputs: dict, params: dict):
        """For /v1/chat/completions: {"delta": text} pieces, then {"result": ...}."""
        async for item in self._generate(inputs, params):
            if isinstance(item, GenerationRequest):
                yield {"result": result_of(item)}
            else:
                yield {"delta": item}
