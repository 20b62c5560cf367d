"""Whether the Serve application a replica belongs to is running, for /readyz.

The Gateway answers HTTP before the other deployments have started (its own replica is up first),
so a probe that only asks the Gateway sends traffic too soon. Serve's own view decides instead,
as KubeRay does for a RayService: the application is ready when its status is RUNNING, i.e. no
deployment is still reaching its configured replicas (DEPLOYING), failed to deploy or lost its
replicas (UNHEALTHY). Scaling a deployment up from zero on demand keeps it RUNNING.
"""

from __future__ import annotations

import asyncio

from ray import serve

RUNNING = "RUNNING"
SETTLED = {"HEALTHY", "UPSCALING", "DOWNSCALING"}


class NotRunning(RuntimeError):
    """The application is not RUNNING; `waiting` names the deployments that keep it so."""

    def __init__(self, status: str, waiting: list[str]):
        super().__init__(f"application {status}: {', '.join(waiting) or 'no deployment yet'}")
        self.waiting = waiting


def own_application() -> str:
    """The name of the application of the replica this runs in."""
    return serve.get_replica_context().replica_id.deployment_id.app_name


def check_application(name: str) -> None:
    """Raises NotRunning unless Serve reports application `name` RUNNING."""
    app = serve.status().applications.get(name)
    if app is None:
        raise NotRunning("missing", [])
    if app.status.value != RUNNING:
        waiting = sorted(
            deployment
            for deployment, state in app.deployments.items()
            if state.status.value not in SETTLED
        )
        raise NotRunning(app.status.value, waiting)


async def application_running(name: str) -> None:
    await asyncio.to_thread(check_application, name)
