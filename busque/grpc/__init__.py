"""busque's gRPC services: busque.v1.JobService and the AvatarForge door's ProfilePhotoJobGrpc,
both answered by the Gateway. Serve's gRPC proxy registers them from these functions (the Serve
configs list the same ones)."""

SERVICER_FUNCTIONS = [
    "busque.grpc.busque_jobs_pb2_grpc.add_JobServiceServicer_to_server",
    "busque.grpc.profile_photo_job_pb2_grpc.add_ProfilePhotoJobGrpcServicer_to_server",
]
