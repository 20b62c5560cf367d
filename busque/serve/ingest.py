"""The IngestWorker deployment: runs `ingest` jobs (busque.media.ingest) and `faces` jobs
(busque.faces.analyze) with the Embedder, the Matcher and the FaceAnalyzer reached through
DeploymentHandles."""

from __future__ import annotations

import asyncio
import logging

from ray import serve
from ray.serve.handle import DeploymentHandle

from busque.faces.analyze import FaceServices, run_faces_job
from busque.faces.index import FaceIndex
from busque.faces.store import FaceStore
from busque.media.decode import MediaError
from busque.media.ingest import IngestServices, run_ingest
from busque.models.base import ModelError
from busque.serve.runtime import Runtime

logger = logging.getLogger("busque.ingest")


@serve.deployment(name="IngestWorker")
class IngestWorker:
    def __init__(
        self,
        settings: dict,
        embedder: DeploymentHandle,
        matcher: DeploymentHandle,
        faces: DeploymentHandle | None,
    ):
        self.runtime = Runtime(settings)
        self.embedder = embedder
        self.matcher = matcher
        self._services: IngestServices | None = None
        self.faces: FaceServices | None = None
        if faces is not None:
            store = FaceStore(self.runtime.engine)
            self.faces = FaceServices(
                objects=self.runtime.objects,
                store=store,
                index=FaceIndex(store),
                analyze=lambda key: faces.analyze_key.remote(key),
                model=self.runtime.settings.faces.backend,
                settings=self.runtime.settings.faces,
            )

    async def services(self) -> IngestServices:
        if self._services is None:
            info = await self.embedder.info.remote()
            self._services = IngestServices(
                objects=self.runtime.objects,
                catalog=self.runtime.catalog,
                embed=lambda data: self.embedder.embed.remote(data, False),
                index_add=lambda *args: self.matcher.add.remote(*args),
                index_search=lambda *args, **kw: self.matcher.search.remote(*args, **kw),
                embedding_model=info["model"],
                embedding_version=info["version"],
                faces=self.faces,
            )
        return self._services

    async def run_job(self, job: dict):
        events: asyncio.Queue = asyncio.Queue()

        async def progress(percent: float, message: str) -> None:
            await events.put({"type": "progress", "percent": percent, "message": message})

        async def work() -> dict:
            try:
                if job["model"] == "faces":
                    if self.faces is None:
                        raise ModelError("faces_disabled", "face analysis is not deployed")
                    result = await run_faces_job(job, self.faces, progress)
                else:
                    services = await self.services()
                    result = await run_ingest(job, services, self.runtime.settings.media, progress)
                return {"type": "result", "result": result}
            except (ModelError, MediaError) as exc:
                return {
                    "type": "error",
                    "code": exc.code,
                    "message": str(exc),
                    "retryable": getattr(exc, "retryable", False),
                }
            except Exception as exc:  # storage or database trouble: worth another attempt
                logger.exception("%s job %s failed", job["model"], job["id"])
                return {
                    "type": "error",
                    "code": "ingest_error",
                    "message": f"{type(exc).__name__}: {exc}",
                    "retryable": True,
                }

        task = asyncio.create_task(work())
        try:
            while not task.done() or not events.empty():
                getter = asyncio.ensure_future(events.get())
                await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                else:
                    getter.cancel()
            yield task.result()
        finally:
            task.cancel()
