"""DupMedia's worker against busque (../shared/seeds/004_*.txt), through the real server: its
sync package sent to /api/v1/sync-media with the token in the JSON body and no header, as the
document shows it (best_dist_config a number), idempotent by hash, faces kept as sent; a bad,
missing or read-only token refused; bodies without a header key capped as a whole."""

from __future__ import annotations

import contextlib
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest

from busque.cli import _key_store
from tests.conftest import wait_for
from tests.face_photos import astronaut, encode
from tests.test_image_api import upload
from tests.test_sync import package


@pytest.fixture
def worker(app):
    """DupMedia's worker: no key header, only the body's api_token."""
    with httpx.Client(base_url=app.url, timeout=60) as client:
        yield client


def dupmedia_package(data: bytes, key: str, token: str) -> dict:
    body = package(data, key)
    body["media_info"]["best_dist_config"] = 0.35
    body["media_info"]["gallery_name"] = "Priv"
    return {"api_token": token, **body}


def test_the_worker_syncs_a_photo_once_by_hash(app, client, worker):
    data = encode(astronaut(), quality=77)
    key = upload(client, data, "IMG_0042.JPG")
    first = worker.post("/api/v1/sync-media", json=dupmedia_package(data, key, app.admin_key))
    assert first.status_code == 202, first.text
    body = first.json()
    assert body["created"] is True and len(body["faces"]) == 1
    assert wait_for(client, body["job_id"], 120)["status"] == "succeeded"
    media = client.get(f"/v1/media/{body['media_id']}").json()
    assert media["collection"] == "Priv"
    assert media["metadata"]["best_dist_config"] == 0.35
    assert [f["box"] for f in media["faces"]] == [[179, 83, 88, 88]]
    again = worker.post("/api/v1/sync-media", json=dupmedia_package(data, key, app.admin_key))
    assert again.status_code == 200
    assert again.json() == {"media_id": body["media_id"], "created": False, "collection": "Priv"}


def test_tokens_are_checked(app, client, worker):
    data = encode(astronaut(), quality=66)
    key = upload(client, data)
    for token in ("", "bq_nope_nope", "not a key"):
        refused = worker.post("/api/v1/sync-media", json=dupmedia_package(data, key, token))
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"]["code"] == "unauthorized"
    reader = _key_store(app.settings).create("default", "read only", ("media:read",)).key
    forbidden = worker.post("/api/v1/sync-media", json=dupmedia_package(data, key, reader))
    assert forbidden.status_code == 403
    # Nothing was catalogued by the refused packages.
    listed = client.get("/v1/media", params={"collection": "Priv", "limit": 100}).json()
    sha = dupmedia_package(data, key, "")["media_info"]["hash"]
    assert sha not in {m.get("sha256") for m in listed["data"]}


def test_bodies_without_a_header_key_share_a_capped_pool(app, client):
    """A client trickling bodies to the keyless path holds at most quotas.keyless_bodies slots
    of the Gateway: the next is a 429 at once; keyed requests are not held up."""
    limit = app.settings.quotas.keyless_bodies
    parts = urlsplit(app.url)
    head = (
        f"POST /api/v1/sync-media HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    ).encode()
    with contextlib.ExitStack() as held:
        for _ in range(limit):
            sock = held.enter_context(socket.create_connection((parts.hostname, parts.port)))
            sock.sendall(head)
        time.sleep(1)
        started = time.monotonic()
        refused = httpx.post(f"{app.url}/api/v1/sync-media", json={"api_token": "x"}, timeout=10)
        assert time.monotonic() - started < 3
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "too_many_uploads"
        assert client.get("/v1/jobs", params={"limit": 1}).status_code == 200
