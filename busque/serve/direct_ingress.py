"""Where the Gateway replicas listen when Ray Serve's direct ingress is on.

With `serve.direct_ingress` each Gateway replica also serves HTTP on a port of its own, so a
request skips the Serve proxy and the proxy's extra round trip for the request body (at
concurrency 1 here: 24 ms at the client against 30 through the proxy, bench/results/search.md).
The proxy keeps serving `serve.port`. A load balancer in front takes these addresses (Ray
names them "target groups"); Ray 2.60 has no public call for them yet, hence the controller's.
"""

from __future__ import annotations

import time


def direct_ports(app_name: str, timeout_s: float = 60.0) -> list[int]:
    """The HTTP ports of the app's ingress replicas, once they listen; [] when direct ingress
    is off, or behind Serve's HAProxy (which serves them on `serve.port`)."""
    import ray
    from ray.serve._private import constants
    from ray.serve._private.common import RequestProtocol

    if not constants.RAY_SERVE_ENABLE_DIRECT_INGRESS or constants.RAY_SERVE_ENABLE_HA_PROXY:
        return []
    controller = ray.get_actor(constants.SERVE_CONTROLLER_NAME, namespace=constants.SERVE_NAMESPACE)
    deadline = time.monotonic() + timeout_s
    while True:
        groups = ray.get(controller.get_target_groups.remote(app_name))
        ports = sorted(
            target.port
            for group in groups
            if group.protocol == RequestProtocol.HTTP and group.ingress_deployment_name
            for target in group.targets
        )
        if ports or time.monotonic() > deadline:
            return ports
        time.sleep(0.5)
