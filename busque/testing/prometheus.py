"""A throwaway real Prometheus (Debian's `prometheus` package) scraping the given targets every
second, and a small client for its query API. For tests: tests/test_metrics.py scrapes the
session's Ray and app, tests/test_cluster.py every node of a multi-node cluster."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from busque.testing.servers import free_port


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


class Prometheus:
    def __init__(self, url: str):
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)

    def query(self, expr: str) -> list[dict]:
        response = self.http.get("/api/v1/query", params={"query": expr})
        assert response.status_code == 200, f"{expr}: {response.text}"
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def values(self, expr: str) -> list[float]:
        return [float(r["value"][1]) for r in self.query(expr)]

    def by(self, expr: str, label: str) -> dict[str, float]:
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(expr)}

    def targets_up(self) -> dict[str, float]:
        """`up` of every scraped target, by its address."""
        return self.by("up", "instance")


@contextlib.contextmanager
def prometheus(
    workdir: Path, jobs: dict[str, list[str]], timeout_s: float = 30
) -> Iterator[Prometheus]:
    """Prometheus on a free loopback port scraping each job's `host:port` targets (their
    /metrics) every second, until the block ends."""
    binary = prometheus_binary()
    if binary is None:
        raise RuntimeError("Prometheus is not installed (Debian's `prometheus` package)")
    workdir.mkdir(parents=True, exist_ok=True)
    config = {  # JSON is YAML
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": targets}]}
            for job, targets in jobs.items()
        ],
    }
    (workdir / "prometheus.yml").write_text(json.dumps(config, indent=2))
    port = free_port()
    log_path = workdir / "prometheus.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + timeout_s
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"Prometheus exited:\n{log_path.read_text()}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Prometheus not ready in {timeout_s}s")
                time.sleep(0.2)
            yield Prometheus(url)
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
