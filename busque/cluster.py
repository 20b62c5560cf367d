"""What busque checks about the Ray cluster it runs on, where a mistake would otherwise pass
silently: an embedded database or object directory on a cluster of several nodes (each node
would get its own), and replicas started without the Serve environment busque depends on."""

from __future__ import annotations

import logging
import os

from busque.config import Settings
from busque.ray_start import SERVE_ENV, start_ray

logger = logging.getLogger("busque.cluster")

GRPC_MESSAGE_LIMIT = "RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH"


class ClusterMisconfigured(RuntimeError):
    """busque refuses to run this way; the message says what to change."""


def alive_nodes() -> list[str]:
    """The addresses of the Ray nodes alive now; empty when this process is not in Ray."""
    import ray

    if not ray.is_initialized():
        return []
    return [node["NodeManagerAddress"] for node in ray.nodes() if node.get("Alive")]


def embedded_on_cluster(settings: Settings) -> str | None:
    """Why these settings cannot serve this cluster, or None. An embedded SQLite file or local
    object directory is per node: replicas on other nodes would see other (or no) data."""
    parts = settings.embedded_parts()
    if not parts or settings.allow_embedded_on_cluster:
        return None
    nodes = alive_nodes()
    if len(nodes) <= 1:
        return None
    return (
        f"busque refuses to run on a Ray cluster of {len(nodes)} nodes with "
        f"{' and '.join(parts)}: every node would get its own copy. Set BUSQUE_DATABASE__URL to "
        "a PostgreSQL URL and BUSQUE_STORAGE__BACKEND=s3 with BUSQUE_STORAGE__S3_* (in the "
        "Serve config's runtime_env env_vars, or the environment of `busque serve`), or "
        "BUSQUE_ALLOW_EMBEDDED_ON_CLUSTER=1 if every node shares that path (e.g. NFS)."
    )


def refuse_embedded_on_cluster(settings: Settings) -> None:
    problem = embedded_on_cluster(settings)
    if problem:
        raise ClusterMisconfigured(problem)


def join_cluster(settings: Settings) -> str | None:
    """For the pipelines' commands: join the cluster at `ray_address` (none: a local Ray starts
    later, when there is work) and say why these settings cannot run on it, before anything is
    written."""
    import ray

    if not settings.ray_address or ray.is_initialized():
        return None
    start_ray(settings)
    return embedded_on_cluster(settings)


def serve_environment_problems() -> list[str]:
    """What this replica's process lacks of busque's Serve environment (ray_start.SERVE_ENV).
    Serve reads these when its modules load, so they must be set where Ray starts (`ray start`,
    the image, the manifests) or in the Serve config's runtime_env, not by busque's launcher."""
    from ray.serve._private import constants

    problems = []
    uses_grpc = constants.RAY_SERVE_USE_GRPC_BY_DEFAULT or constants.RAY_SERVE_PROXY_USE_GRPC
    wanted = int(SERVE_ENV[GRPC_MESSAGE_LIMIT])
    if uses_grpc and wanted > constants.RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH:
        problems.append(
            f"{GRPC_MESSAGE_LIMIT} is {constants.RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH} "
            f"(needs {wanted}): requests and answers over gRPC's default 4 MiB (a photo to "
            "search by, a page of results) would fail with 500"
        )
    return problems


def check_replica(settings: Settings) -> None:
    """Run first in every replica: fail loudly rather than serve wrongly."""
    problems = serve_environment_problems()
    if problems:
        raise ClusterMisconfigured(
            "this Ray node lacks busque's Serve environment: "
            + "; ".join(problems)
            + f". Set {', '.join(f'{k}={v}' for k, v in SERVE_ENV.items())} where Ray starts "
            "(cluster.yaml, Dockerfile and deploy/kuberay do) or in the Serve config's "
            "runtime_env env_vars."
        )
    if os.environ.get("RAY_SERVE_THROUGHPUT_OPTIMIZED") != "1":
        logger.warning(
            "RAY_SERVE_THROUGHPUT_OPTIMIZED is not 1 on this node: busque runs, about 1.4x "
            "slower in jobs/s (bench/results/jobs.md)"
        )
    refuse_embedded_on_cluster(settings)
