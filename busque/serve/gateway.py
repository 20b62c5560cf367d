"""The Gateway deployment: the HTTP ingress (FastAPI, with the front doors) and the gRPC
services (busque.v1.JobService, AvatarForge's ProfilePhotoJobGrpc).

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
from busque.doors import avatarforge_grpc
from busque.grpc import profile_photo_job_pb2
from busque.serve.app_status import application_running, own_application
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
        text_embedder: DeploymentHandle | None = None,
    ):
        application = own_application()
        self.ctx = ApiContext(
            replica_runtime(settings),
            dispatcher,
            embedder,
            matcher,
            face_analyzer,
            text_generator,
            text_embedder,
            application_running=lambda: application_running(application),
        )

    def __serve_build_asgi_app__(self):
        return create_app(self.ctx, doors.ROUTERS, doors.KEYLESS)

    # busque.v1.JobService and AvatarForge's ProfilePhotoJobGrpc both name their RPCs
    # GetStatus and StreamStatus: the request's type says which service was called.

    async def GetStatus(self, request, grpc_context):
        if isinstance(request, profile_photo_job_pb2.JobStatusRequest):
            return await avatarforge_grpc.get_status(self.ctx, request, grpc_context)
        return await grpc_jobs.get_status(self.ctx, request, grpc_context)

    async def StreamStatus(self, request, grpc_context):
        if isinstance(request, profile_photo_job_pb2.StatusStreamRequest):
            stream = avatarforge_grpc.stream_status(self.ctx, request, grpc_context)
        else:
            stream = grpc_jobs.stream_status(self.ctx, request, grpc_context)
        async for message in stream:
            yield message
