"""The real busque Serve application for tests and benchmarks, started exactly as `busque serve`
starts it, and reached over HTTP like any client would. Ray must be running; the caller runs
`busque.ray_start.serve_environment()` before anything imports `ray.serve`."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from busque.testing import answers


@dataclass
class App:
    settings: object
    url: str
    grpc_target: str
    admin_key: str

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"X-API-Key": key or self.admin_key}
        hooks = {"response": [answers.LOG.hook]} if answers.LOG.enabled else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, event_hooks=hooks)


def start_app(settings) -> App:
    """serve.start + serve.run of the real app, as `busque serve` does; returns once /readyz
    answers 200."""
    from ray import serve

    from busque.cli import ensure_dev_key
    from busque.grpc import SERVICER_FUNCTIONS
    from busque.serve.app import build_app

    key, _ = ensure_dev_key(settings)
    serve.start(
        http_options={"host": "127.0.0.1", "port": settings.serve.port},
        grpc_options={
            "port": settings.serve.grpc_port,
            "grpc_servicer_functions": SERVICER_FUNCTIONS,
        },
    )
    serve.run(build_app(settings), name=settings.serve.app_name, route_prefix="/")
    app = App(settings, settings.serve.public_url, f"127.0.0.1:{settings.serve.grpc_port}", key)
    with app.client() as client:
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "busque did not become ready"
            time.sleep(0.2)
    return app


def wait_for(job_client: httpx.Client, job_id: str, timeout: float = 30) -> dict:
    """Long-poll a job until it is terminal."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"job {job_id} did not finish in {timeout}s"
        job = job_client.get(f"/v1/jobs/{job_id}", params={"wait": min(left, 10)}).json()
        if job["status"] in ("succeeded", "failed", "canceled"):
            return job
