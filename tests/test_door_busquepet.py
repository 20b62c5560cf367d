"""BusquePet's clients against busque (../shared/seeds/000_*.txt), through the real server: its
Go API calls /v1/match with the absolute path of a normalized photo in the storage they share
(read here from the configured mount, never outside it), the request's metadata comes back, the
breed is the one a photo was ingested with, and duration_ms is an integer (its Go client reads
an int64); its frontend's WebSocket gets job.status pending -> processing -> completed, then
job.result, for every job of the tenant without subscribing."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.conftest import wait_for
from tests.test_events import ws_url
from tests.test_ingest import ingest, jpeg, photo

SENT_ROOT = "/workspace/shared"


@pytest.fixture(scope="module")
def shared(app) -> Path:
    root = Path(app.settings.doors.busquepet_storage_dir)
    (root / "normalized").mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture(scope="module")
def catalogued(app):
    """Two photos in a collection of their own, one ingested with BusquePet's own breed."""
    collection = f"busquepet-{time.time_ns()}"
    with app.client() as client:
        cat = ingest(
            client, jpeg(photo("chelsea")), collection, metadata=json.dumps({"breed": "Bengal"})
        )
        coffee = ingest(client, jpeg(photo("coffee")), collection, metadata="{}")
        for media in (cat, coffee):
            assert wait_for(client, media["job_id"], timeout=120)["status"] == "succeeded"
    return collection, cat, coffee


def test_match_reads_the_absolute_path_the_go_api_sends(app, client, shared, catalogued):
    collection, cat, _ = catalogued
    (shared / "normalized" / "q1.jpg").write_bytes(jpeg(photo("chelsea"), size=300))
    metadata = {
        "original_filename": "gato.jpg",
        "checksum": "abc",
        "received_at": "2024-11-14T17:06:00Z",
    }
    answer = client.post(
        "/v1/match",
        json={
            "job_id": "123",
            "image_path": f"{SENT_ROOT}/normalized/q1.jpg",
            "k": 2,
            "use_hybrid": True,
            "collection": collection,
            "metadata": metadata,
        },
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["job_id"] == "123" and body["metadata"] == metadata
    assert isinstance(body["duration_ms"], int)
    first = body["matches"][0]
    assert first["image_id"] == cat["media_id"] and first["breed"] == "Bengal"
    assert set(first) == {"rank", "image_id", "breed", "score", "distance", "image_path"}


def test_nothing_outside_the_shared_storage_is_read(app, client, shared, other_tenant_key):
    secret = shared.parent / "outside.jpg"
    secret.write_bytes(jpeg(photo("coffee"), size=100))
    os.symlink(secret, shared / "normalized" / "link.jpg")
    for path in (
        str(secret),  # a real file, outside the root the Go API names
        "/etc/passwd",
        f"{SENT_ROOT}/../outside.jpg",
        f"{SENT_ROOT}/normalized/../../outside.jpg",
        f"{SENT_ROOT}/normalized/link.jpg",  # a link out of the storage
        f"{SENT_ROOT}x/normalized/q1.jpg",  # a sibling of the root, not inside it
    ):
        answer = client.post("/v1/match", json={"job_id": "x", "image_path": path})
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["error"]["code"] == "image_not_found"
    missing = client.post(
        "/v1/match", json={"job_id": "x", "image_path": f"{SENT_ROOT}/normalized/none.jpg"}
    )
    assert missing.status_code == 400, missing.text
    # The shared storage is BusquePet's tenant's (doors.busquepet_tenant): no other key reads it.
    (shared / "normalized" / "q2.jpg").write_bytes(jpeg(photo("chelsea"), size=200))
    with app.client(other_tenant_key) as other:
        theirs = other.post(
            "/v1/match",
            json={"job_id": "x", "image_path": f"{SENT_ROOT}/normalized/q2.jpg"},
        )
        assert theirs.status_code == 404, theirs.text


def test_the_websocket_speaks_busquepet(app, client, other_tenant_key, catalogued):
    collection = catalogued[0]
    url = ws_url(app, api_key=app.admin_key, dialect="busquepet")
    with connect(url) as ws:
        with app.client(other_tenant_key) as other:
            foreign = ingest(other, jpeg(photo("coffee"), size=128), "elsewhere")
        media = ingest(client, jpeg(photo("chelsea"), size=256), collection)
        ws.send("anything: BusquePet's hub read and dropped what clients sent")
        messages = []
        deadline = time.monotonic() + 120
        while not any(
            m["type"] == "job.result" and m["job_id"] == media["job_id"] for m in messages
        ):
            left = deadline - time.monotonic()
            assert left > 0, messages
            messages.append(json.loads(ws.recv(timeout=left)))
    mine = [m for m in messages if m["job_id"] == media["job_id"]]
    statuses = [m["status"] for m in mine if m["type"] == "job.status"]
    assert statuses == ["pending", "processing", "completed"], mine
    assert [m["type"] for m in mine][-1] == "job.result"
    result = mine[-1]["result"]
    assert result["job_id"] == media["job_id"]
    assert result["matches"][0]["breed"] == "Bengal"  # the catalogued cat, by its given breed
    assert {"rank", "image_id", "breed", "score", "distance", "image_path"} <= set(
        result["matches"][0]
    )
    assert foreign["job_id"] not in {m["job_id"] for m in messages}
