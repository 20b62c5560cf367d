"""The Gateway deployment: the HTTP ingress (FastAPI) and the gRPC JobService.

Ray Serve's gRPC proxy calls the method named like the RPC on the ingress deployment, with the
`grpc_context` parameter carrying metadata (the API key) and status codes.
"""

from __future__ import annotations

from ray import serve
from ray.serve.handle import DeploymentHandle

from busque import doors
from busque.api import grpc_jobs
from busque.api.app import create_app
from busque.api.context import ApiContext
from busque.serve.replica import replica_runtime


@serve.deployment(name="Gateway")
@serve.ingress()
class Gateway:
    def __init__(
        self,
        settings: dict,
        dispatcher: DeploymentHandle,
        embedder: DeploymentHandle,
        matcher: DeploymentHandle,
        face_analyzer: DeploymentHandle | None = None,
        text_generator: DeploymentHandle | None = None,
    ):
        self.ctx = ApiContext(
            replica_runtime(settings), dispatcher, embedder, matcher, face_analyzer, text_generator
        )

    def __serve_build_asgi_app__(self):
        return create_app(self.ctx, doors.ROUTERS, doors.KEYLESS)

    async def GetStatus(self, request, grpc_context):
        return await grpc_jobs.get_status(self.ctx, request, grpc_context)

    async def StreamStatus(self, request, grpc_context):
        async for event in grpc_jobs.stream_status(self.ctx, request, grpc_context):
            yield event
