"""`busque serve` with Ray Serve's ingress modes that skip its Python proxy, the README's command
in a process and a Ray of its own each:

- `serve.direct_ingress`: the Gateway replica answers on its own port (printed at start) as well
  as through the Serve proxy on `serve.port`;
- `serve.haproxy`: Ray's bundled HAProxy serves `serve.port` and routes to the replica's port.

Ingest, the job's server-sent events, search and a too-large upload go to that address. And
bench/idle_memory.py's measurements, on this process (its own runs start `busque serve` twice a
round: minutes, too long for this suite)."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from typing import NamedTuple

import httpx
import pytest
import skimage.data
from PIL import Image

from busque.testing.servers import free_port
from tests.conftest import wait_for


def jpeg(name: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


class Served(NamedTuple):
    url: str  # the URL to test
    proxy: str | None  # the Serve proxy's URL, None where HAProxy holds the service's port
    key: str  # the admin key
    pid: int  # the `busque serve` process


@pytest.fixture(scope="module", params=["direct_ingress", "haproxy"])
def served(request, tmp_path_factory):
    """A running `busque serve`."""
    mode = request.param
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BUSQUE_", "RAY_SERVE_")) and k != "RAY_ADDRESS"
    }
    env |= {
        "BUSQUE_HOME": str(tmp_path_factory.mktemp("direct") / "home"),
        "BUSQUE_SERVE__PORT": str(port),
        "BUSQUE_SERVE__GRPC_PORT": "0",
        f"BUSQUE_SERVE__{mode.upper()}": "true",
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "1",  # a quick stop at the end
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "busque.cli", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines = []
    try:
        deadline = time.monotonic() + 300
        while not any(line.startswith("  try:") for line in lines):
            assert time.monotonic() < deadline, "busque serve did not start in time"
            line = process.stdout.readline()
            assert line, f"busque serve exited: {''.join(lines)}"
            lines.append(line)
        text = "".join(lines)
        key = re.search(r"admin key[^\n]*\n\s+(\S+)", text).group(1)
        direct = re.search(r"direct:\s+(http://\S+)", text)
        if mode == "haproxy":
            assert direct is None, text  # HAProxy fronts the replica on the service's port
            yield Served(f"http://127.0.0.1:{port}", None, key, process.pid)
        else:
            assert direct, text
            yield Served(direct.group(1), f"http://127.0.0.1:{port}", key, process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(120)
        except subprocess.TimeoutExpired:
            process.kill()


def test_the_api_works_without_the_serve_proxy_in_the_way(served):
    url, proxy, key, _ = served
    headers = {"X-API-Key": key}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        accepted = client.post(
            "/v1/ingest",
            files={"image": ("cat.jpg", jpeg("chelsea"), "image/jpeg")},
            data={"collection": "direct"},
        )
        assert accepted.status_code == 202, accepted.text
        media = accepted.json()
        with client.stream("GET", f"/v1/jobs/{media['job_id']}/events") as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            body = "".join(events.iter_text())
        assert "event: job.status" in body and "event: job.result" in body
        assert wait_for(client, media["job_id"], timeout=120)["status"] == "succeeded"

        found = client.post(
            "/v1/search",
            files={"image": ("q.jpg", jpeg("chelsea"), "image/jpeg")},
            data={"collection": "direct", "k": "1"},
        )
        assert found.status_code == 200, found.text
        top = found.json()["matches"][0]
        assert top["media_id"] == media["media_id"] and top["exact_duplicate"]
        assert "catalog;dur=" in found.headers["server-timing"]

        too_big = client.post(
            "/v1/ingest", files={"image": ("big.jpg", b"\xff" * (30 * 2**20), "image/jpeg")}
        )
        assert too_big.status_code == 413, too_big.text

    if proxy is None:
        return
    # direct ingress: the Serve proxy still serves the same app on its own port
    assert url.rsplit(":", 1)[1] != proxy.rsplit(":", 1)[1]
    with httpx.Client(base_url=proxy, headers=headers, timeout=60) as client:
        media_view = client.get(f"/v1/media/{media['media_id']}")
        assert media_view.status_code == 200 and media_view.json()["status"] == "indexed"


def test_bench_idle_memory_measures_this_service(served):
    """What bench/idle_memory.py samples of a `busque serve`: every process it started (Ray's
    servers, Serve's controller, proxy and replicas) by role, and a job's time."""
    from bench import idle_memory

    taken = idle_memory.sample(served.pid)
    roles = taken["by_role"]
    assert {"busque serve (driver)", "gcs_server", "raylet"} <= set(roles), roles
    assert any(role.startswith("replica ") for role in roles), roles
    assert taken["processes"] >= 6 and taken["pss_bytes"] > 2**28, taken
    assert 0 < taken["pss_bytes"] <= taken["rss_bytes"], taken
    assert idle_memory.starting(taken) == []  # the service answered: no replica still starting
    with httpx.Client(base_url=served.url, headers={"X-API-Key": served.key}) as client:
        model, request = idle_memory.JOBS["echo"]
        assert 0 < idle_memory.job_seconds(client, model, request) < 60
