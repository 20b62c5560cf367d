"""Ray start-up, shared by the CLI, the pipelines' entry points, the tests and the benchmarks:
the Serve environment busque runs with, and a local or remote Ray to run on."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from busque.config import Settings

# Ray Serve's throughput preset (user code on the replica's own event loop, gRPC between
# deployments, buffered logs, which busque's replicas flush every second): about 1.4x jobs/s
# here (bench/results/jobs.md). busque's replicas never block their event loop (all blocking
# work goes to threads), which the preset requires. Its direct ingress (each Gateway replica
# serving HTTP itself) stays off unless `serve.direct_ingress` or `serve.haproxy` asks for it:
# without a load balancer in front only the Serve proxy offers one stable port. The proxy reaches
# the Gateway over gRPC too: Ray 2.60 derives that flag before the preset applies, so it is set
# here. Image search, three runs each way: proxy CPU 4.9 vs 6.1 ms a request, p50 at concurrency
# 1 1.6 ms lower, 6% more requests/s at 16.
SERVE_ENV = {
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_SERVE_PROXY_USE_GRPC": "1",
    "RAY_SERVE_ENABLE_DIRECT_INGRESS": "0",
    # gRPC's default 4 MiB message cap, which Serve keeps between replicas, failed requests and
    # responses that HTTP allows (25 MiB bodies: a photo to search by, a page of jobs) with 500s.
    "RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH": str(512 << 20),
    "RAY_USAGE_STATS_ENABLED": "0",
}


def serve_environment(direct_ingress: bool | None = None, haproxy: bool | None = None) -> None:
    """Must run before Ray starts and before this process imports `ray.serve`: Serve reads these
    when its modules load, and the driver's handle defaults (gRPC or Ray actor calls between
    deployments) travel inside the app it builds. `direct_ingress` and `haproxy`
    (settings.serve) turn on Serve's direct ingress or its HAProxy ingress unless the
    environment says otherwise."""
    if direct_ingress is not None:
        os.environ.setdefault("RAY_SERVE_ENABLE_DIRECT_INGRESS", "1" if direct_ingress else "0")
    if haproxy:
        os.environ.setdefault("RAY_SERVE_ENABLE_HA_PROXY", "1")
    for name, value in SERVE_ENV.items():
        os.environ.setdefault(name, value)
    constants = sys.modules.get("ray.serve._private.constants")
    if constants is None:
        return
    throughput = os.environ["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"
    direct = "1" in (
        os.environ["RAY_SERVE_ENABLE_DIRECT_INGRESS"],
        os.environ.get("RAY_SERVE_ENABLE_HA_PROXY"),  # HAProxy implies direct ingress
    )
    if (throughput, direct) != (
        constants.RAY_SERVE_THROUGHPUT_OPTIMIZED,
        constants.RAY_SERVE_ENABLE_DIRECT_INGRESS,
    ):
        raise RuntimeError("serve_environment() must run before ray.serve is imported")


def start_ray(settings: Settings, join_serve: bool = True):
    """Ray for `busque serve` and the pipelines' commands: the cluster at `ray_address`; else
    (`join_serve`) the local Ray a `busque serve` on the same home runs (it notes its address in
    {home}/ray_address), so a backfill or reindex does not start a second Ray beside it; else a
    local one with its dashboard. Returns Ray's context (its `dashboard_url` is the one Ray bound)."""
    import ray

    serve_environment()
    address = settings.ray_address or (join_serve and serving_ray_address(settings))
    if address:
        return ray.init(address=address, log_to_driver=False)
    return start_local_ray(include_dashboard=True, dashboard_host="127.0.0.1")


def _address_file(settings: Settings) -> Path:
    return settings.home / "ray_address"


def note_serving_ray(settings: Settings, address: str | None) -> None:
    """`busque serve` on a local Ray notes its address for the pipelines' commands (None: gone)."""
    path = _address_file(settings)
    if address is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(address + "\n")


def serving_ray_address(settings: Settings) -> str | None:
    """The address a running `busque serve` noted, if its Ray still answers there."""
    path = _address_file(settings)
    if not path.exists():
        return None
    address = path.read_text().strip()
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except (OSError, ValueError):
        return None  # a `busque serve` that was killed: its Ray is gone
    return address


def start_local_ray(**options):
    """A local Ray on this machine (`address="local"`: never a stale cluster an earlier `ray
    start` left behind). Several small replicas share few cores: it declares more logical CPUs
    than there are (replicas reserve fractions), so that Serve and a Ray Data job never starve
    each other. The tests and benchmarks add a small footprint through `options` (no dashboard,
    a 200 MiB object store, the loopback address). Returns Ray's context."""
    import ray

    serve_environment()
    return ray.init(
        **{
            "address": "local",
            "num_cpus": max(4, os.cpu_count() or 1),
            "log_to_driver": False,
            **options,
        }
    )


# What the tests and the benchmarks start: a small local Ray (see ENVIRONMENT.md, "Ray on 2 cores").
SMALL_LOCAL_RAY = {
    "include_dashboard": False,
    "object_store_memory": 200 * 2**20,
    "_node_ip_address": "127.0.0.1",
}
