"""POST /v1/media/sync, DupMedia's sync package, through the real app: accepted once by hash,
faces stored as sent, the photo ingested and searchable; bad packages refused."""

from __future__ import annotations

import base64
import hashlib
import io

from PIL import Image

from tests.conftest import wait_for
from tests.face_photos import astronaut, encode
from tests.test_image_api import upload


def package(data: bytes, key: str, **changes) -> dict:
    thumb = io.BytesIO()
    Image.new("RGB", (150, 150), (200, 150, 120)).save(thumb, "JPEG")
    body = {
        "media_info": {
            "hash": hashlib.sha256(data).hexdigest(),
            "phash": "c3c3c3c3c3c3c3c3",
            "file_name": "IMG_0001.JPG",
            "storage_path": key,
            "gallery_name": "edge",
            "best_dist_config": {"radius": 8},
        },
        "faces": [
            {
                "box": [179, 83, 88, 88],
                "embedding": [0.05] * 128,
                "thumbnail_b64": base64.b64encode(thumb.getvalue()).decode(),
            }
        ],
    }
    body["media_info"] |= changes
    return body


def test_sync_is_idempotent_by_hash_and_keeps_the_sent_faces(client):
    data = encode(astronaut(), quality=88)
    key = upload(client, data, "IMG_0001.JPG")
    first = client.post("/v1/media/sync", json=package(data, key))
    assert first.status_code == 202, first.text
    body = first.json()
    assert body["created"] is True and len(body["faces"]) == 1
    job = wait_for(client, body["job_id"], 120)
    assert job["status"] == "succeeded" and job["result"]["faces"] is None  # not re-detected
    media = client.get(f"/v1/media/{body['media_id']}").json()
    assert media["collection"] == "edge" and media["metadata"]["file_name"] == "IMG_0001.JPG"
    (face,) = media["faces"]
    assert face["box"] == [179, 83, 88, 88] and face["thumbnail_url"]

    again = client.post("/v1/media/sync", json=package(data, key))
    assert again.status_code == 200
    assert again.json() == {"media_id": body["media_id"], "created": False, "collection": "edge"}


def test_bad_sync_packages_are_refused(client, app, other_tenant_key):
    data = encode(astronaut(), quality=70)
    key = upload(client, data)
    wrong = client.post("/v1/media/sync", json=package(data, key, hash="0" * 64))
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "hash_mismatch"
    missing = client.post("/v1/media/sync", json=package(data, "nobody/uploads/x.jpg"))
    assert missing.status_code == 404
    bad_hash = client.post("/v1/media/sync", json=package(data, key, hash="xyz"))
    assert bad_hash.status_code == 422
    broken = package(data, key)
    broken["faces"][0]["thumbnail_b64"] = "!!not base64!!"
    assert client.post("/v1/media/sync", json=broken).status_code == 422
    short = package(data, key)
    short["faces"][0]["embedding"] = [0.1] * 3
    assert client.post("/v1/media/sync", json=short).status_code == 422
    with app.client(other_tenant_key) as other:  # another tenant's upload is not found
        assert other.post("/v1/media/sync", json=package(data, key)).status_code == 404
