"""DupMedia's worker against busque (../shared/seeds/004_*.txt), through the real server: its
sync package sent to /api/v1/sync-media with the token in the JSON body and no header, as the
document shows it (best_dist_config a number), idempotent by hash, faces kept as sent; a bad,
missing or read-only token refused; bodies without a header key capped as a whole; the
document's own example, a video, recorded as the backfill records one."""

from __future__ import annotations

import contextlib
import io
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from busque.cli import _key_store
from busque.runtime import Runtime
from tests.conftest import wait_for
from tests.face_photos import astronaut, encode
from tests.test_image_api import upload
from tests.test_sync import package
from tests.video_files import make_video


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


def test_the_worker_syncs_a_video_as_the_backfill_records_one(app, client, worker, tmp_path):
    """The document's own example: video_01.mp4 with its faces. busque records the video's
    metadata and keyframe pHashes, embeds its poster frame and keeps the sent faces."""
    data = make_video(tmp_path / "video_01.mp4", seconds=2.0, fps=10, size=(160, 120)).read_bytes()
    key = upload(client, data, "video_01.mp4")
    body = dupmedia_package(data, key, app.admin_key)
    body["media_info"]["file_name"] = "video_01.mp4"
    body["faces"][0]["box"] = [40, 20, 50, 50]  # in the video's 160x120 pixels
    first = worker.post("/api/v1/sync-media", json=body)
    assert first.status_code == 202, first.text
    created = first.json()
    assert created["created"] is True and len(created["faces"]) == 1
    assert wait_for(client, created["job_id"], 120)["status"] == "succeeded"
    media = client.get(f"/v1/media/{created['media_id']}").json()
    meta = media["metadata"]
    assert meta["kind"] == "video" and meta["file_name"] == "video_01.mp4"
    assert abs(meta["duration_s"] - 2.0) < 0.3 and meta["fps"] == 10 and meta["codec"]
    assert len(meta["keyframe_phashes"]) >= 1 and media["phash"] == meta["keyframe_phashes"][0]
    assert (media["width"], media["height"]) == (160, 120) and media["format"] == "mp4"
    assert [f["box"] for f in media["faces"]] == [[40, 20, 50, 50]]
    # The original is the video itself (content-addressed); the image is its poster frame.
    sha = body["media_info"]["hash"]
    stored = Runtime(app.settings).objects.get(
        f"{client.get('/v1/me').json()['tenant_id']}/originals/{sha[:2]}/{sha}.mp4"
    )
    assert stored == data
    poster = Image.open(io.BytesIO(httpx.get(media["image_url"], timeout=30).content))
    assert poster.format == "JPEG" and poster.size == (160, 120)
    thumb = httpx.get(media["thumbnail_url"], timeout=30)
    assert thumb.status_code == 200 and thumb.content[:4] == b"RIFF"  # WebP
    again = worker.post("/api/v1/sync-media", json=body)
    assert again.status_code == 200 and again.json()["media_id"] == created["media_id"]


def test_a_bad_video_package_is_refused_and_leaves_nothing(app, client, worker, tmp_path):
    data = make_video(tmp_path / "clip.mov", seconds=1.0, size=(96, 64), seed=3).read_bytes()
    key = upload(client, data, "clip.mov")

    def sent(**changes):
        body = dupmedia_package(data, key, app.admin_key)
        body["media_info"]["file_name"] = "clip.mov"
        body["faces"][0]["box"] = changes.pop("box", [0, 0, 10, 10])
        body["media_info"] |= changes
        return worker.post("/api/v1/sync-media", json=body)

    def catalogued() -> set[str]:
        listed = client.get("/v1/media", params={"collection": "Priv", "limit": 200}).json()
        return {m["id"] for m in listed["data"]}

    before = catalogued()
    for response, status, code in (
        (sent(hash="0" * 64), 422, "hash_mismatch"),
        (sent(box=[90, 10, 20, 20]), 422, "invalid_request"),  # outside the 96x64 video
        (sent(storage_path=key + "-missing.mov"), 404, "object_not_found"),
    ):
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code, response.text
    garbage = b"not a video at all" * 100
    garbage_key = upload(client, garbage, "broken.mp4")
    broken = dupmedia_package(garbage, garbage_key, app.admin_key)
    broken["media_info"]["file_name"] = "broken.mp4"
    refused = worker.post("/api/v1/sync-media", json=broken)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_video"
    assert catalogued() == before


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
