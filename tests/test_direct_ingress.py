"""`busque serve` with Ray Serve's direct ingress (`serve.direct_ingress`): the README's command
in a process and a Ray of its own, the Gateway replica answering on its own port (printed at
start) as well as through the Serve proxy. Ingest, the job's server-sent events, search and a
too-large upload go to the replica's port."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest
import skimage.data
from PIL import Image

from tests.conftest import wait_for
from tests.servers import free_port


def jpeg(name: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(direct URL, proxy URL, admin key) of a running `busque serve`."""
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
        "BUSQUE_SERVE__DIRECT_INGRESS": "true",
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
        direct = re.search(r"direct:\s+(http://\S+)", text)
        assert direct, text
        key = re.search(r"admin key[^\n]*\n\s+(\S+)", text).group(1)
        yield direct.group(1), f"http://127.0.0.1:{port}", key
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(120)
        except subprocess.TimeoutExpired:
            process.kill()


def test_the_gateway_replica_serves_the_api_on_its_own_port(served):
    direct, proxy, key = served
    assert direct.rsplit(":", 1)[1] != proxy.rsplit(":", 1)[1]
    headers = {"X-API-Key": key}
    with httpx.Client(base_url=direct, headers=headers, timeout=60) as client:
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

    # the Serve proxy still serves the same app
    with httpx.Client(base_url=proxy, headers=headers, timeout=60) as client:
        media_view = client.get(f"/v1/media/{media['media_id']}")
        assert media_view.status_code == 200 and media_view.json()["status"] == "indexed"
