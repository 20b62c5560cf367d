"""Whether every deployment of the Serve application a replica belongs to has come up, for
/readyz.

The Gateway answers HTTP before its sibling deployments have started (its own replica is up
first), so a probe that only asks the Gateway sends traffic too soon. Serve's own view decides:
a deployment keeps the node not ready while it is still reaching its configured replicas
(UPDATING) or failed to (DEPLOY_FAILED) with no replica RUNNING. Everything else is ready on
purpose: a rolling update (old replicas still serve), a model starting on demand from zero
(UPSCALING), or replicas lost with a node (UNHEALTHY: the jobs wait in the database and are
retried; taking every node's Gateway out of a load balancer at once would be an outage).
"""

from __future__ import annotations

import asyncio

from ray import serve

NOT_UP = {"UPDATING", "DEPLOY_FAILED"}


class NotRunning(RuntimeError):
    """Deployments still coming up; `waiting` names them."""

    def __init__(self, waiting: list[str]):
        super().__init__(f"deployments not up yet: {', '.join(waiting) or 'the application'}")
        self.waiting = waiting


def own_application() -> str:
    """The name of the application of the replica this runs in."""
    return serve.get_replica_context().replica_id.deployment_id.app_name


def check_application(name: str) -> None:
    """Raises NotRunning while application `name` is missing or a deployment of it is still
    coming up with no replica running."""
    app = serve.status().applications.get(name)
    if app is None:
        raise NotRunning([])
    waiting = sorted(
        deployment
        for deployment, state in app.deployments.items()
        if state.status.value in NOT_UP
        and not sum(n for replica, n in state.replica_states.items() if replica == "RUNNING")
    )
    if waiting:
        raise NotRunning(waiting)


async def application_running(name: str) -> None:
    await asyncio.to_thread(check_application, name)
