"""The IngestWorker deployment: runs `ingest` jobs (busque.media.ingest) and `faces` jobs
(busque.faces.analyze) with the Embedder, the Matcher and the FaceAnalyzer reached through
DeploymentHandles."""

from __future__ import annotations

import logging

from ray import serve
from ray.serve.handle import DeploymentHandle

from busque.faces.analyze import FaceServices, run_faces_job
from busque.jobs.events import Emit, Failure, Progress, Result, pump
from busque.media.decode import MediaError
from busque.media.ingest import IngestServices, run_ingest
from busque.models.base import ModelError
from busque.serve.replica import replica_runtime

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
        self.runtime = replica_runtime(settings)
        self.embedder = embedder
        self.matcher = matcher
        self._services: IngestServices | None = None
        self.faces: FaceServices | None = None
        if faces is not None:
            self.faces = FaceServices(
                objects=self.runtime.objects,
                store=self.runtime.faces,
                index=self.runtime.face_index,
                analyze=lambda key: faces.analyze_key.remote(key),
                analyze_image=lambda image: faces.analyze.remote(image),
                model=self.runtime.settings.faces.backend,
                settings=self.runtime.settings.faces,
            )

    async def services(self) -> IngestServices:
        if self._services is None:
            info = await self.embedder.info.remote()
            self._services = IngestServices(
                objects=self.runtime.objects,
                catalog=self.runtime.catalog,
                embed=lambda pixels: self.embedder.embed_pixels.remote(pixels),
                index_add=lambda *args: self.matcher.add.remote(*args),
                index_search=lambda *args, **kw: self.matcher.search.remote(*args, **kw),
                embedding_model=info["model"],
                embedding_version=info["version"],
                model_side=info["source_side"],
                collections=self.runtime.collections,
                faces=self.faces,
            )
        return self._services

    async def run_job(self, job: dict):
        """The dispatcher's protocol (busque.jobs.events): progress, then the result."""

        async def work(emit: Emit) -> Result | Failure:
            async def progress(percent: float, message: str) -> None:
                emit(Progress(percent, message))

            try:
                if job["model"] == "faces":
                    if self.faces is None:
                        raise ModelError("faces_disabled", "face analysis is not deployed")
                    result = await run_faces_job(job, self.faces, progress)
                else:
                    services = await self.services()
                    result = await run_ingest(job, services, self.runtime.settings, progress)
                return Result(result)
            except (ModelError, MediaError) as exc:
                return Failure(exc.code, str(exc), getattr(exc, "retryable", False))
            except Exception as exc:  # storage or database trouble: worth another attempt
                logger.exception("%s job %s failed", job["model"], job["id"])
                return Failure("ingest_error", f"{type(exc).__name__}: {exc}", retryable=True)

        async for event in pump(work):
            yield event
