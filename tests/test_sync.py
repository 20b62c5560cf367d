"""POST /v1/media/sync, DupMedia's sync package, through the real app: accepted once by hash,
faces stored as sent, the photo ingested and searchable; bad packages refused."""

from __future__ import annotations

import base64
import hashlib
import io
import json

import numpy as np
import pytest
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


def truncated_thumbnail() -> str:
    """A noisy JPEG cut in half: its header still reads, its pixels do not."""
    pixels = np.random.default_rng(0).integers(0, 256, (150, 150, 3), dtype=np.uint8)
    jpeg = io.BytesIO()
    Image.fromarray(pixels).save(jpeg, "JPEG")
    return base64.b64encode(jpeg.getvalue()[: len(jpeg.getvalue()) // 2]).decode()


def stored(client) -> tuple[list, list]:
    """The tenant's media (in any state) and people."""
    media = client.get("/v1/media", params={"status": "all", "limit": 200}).json()["data"]
    people = client.get("/v1/people", params={"limit": 200}).json()["data"]
    return [m["id"] for m in media], [p["id"] for p in people]


def error_locs(response) -> list[list]:
    return [e["loc"] for e in response.json()["error"]["details"]["errors"]]


BAD_FACES = [  # the astronaut photo is 512x512
    ("embedding", [1e308] * 128),
    ("embedding", [5.0] * 128),  # finite, but an L2 norm of 56
    ("box", [-5, -5, -10, 1e12]),
    ("box", [10, 10, 0, 10]),
    ("box", [450, 10, 88, 88]),  # past the photo's right edge
    ("score", -1),
    ("score", 1.5),
    ("thumbnail_b64", truncated_thumbnail()),
]


@pytest.mark.parametrize(("field", "value"), BAD_FACES)
def test_an_invalid_face_refuses_the_whole_package(client, field, value):
    data = encode(astronaut(), quality=61)
    key = upload(client, data)
    before = stored(client)
    body = package(data, key)
    good = body["faces"][0]
    body["faces"] = [good, {**good, field: value}]  # the second of two faces is bad
    refused = client.post("/v1/media/sync", json=body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "invalid_request"
    assert ["body", "faces", 1, field] in error_locs(refused)
    assert stored(client) == before


def test_nan_and_infinity_are_not_json(client):
    data = encode(astronaut(), quality=61)
    key = upload(client, data)
    before = stored(client)
    for value in (float("nan"), float("inf")):
        body = package(data, key)
        body["faces"][0]["embedding"] = [value] * 128
        refused = client.post(
            "/v1/media/sync",
            content=json.dumps(body),  # Python writes NaN and Infinity
            headers={"content-type": "application/json"},
        )
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["code"] == "invalid_json"
    assert stored(client) == before


def test_gallery_name_dot_dot_is_refused(client):
    data = encode(astronaut(), quality=61)
    key = upload(client, data)
    before = stored(client)
    refused = client.post("/v1/media/sync", json=package(data, key, gallery_name=".."))
    assert refused.status_code == 422, refused.text
    assert ["body", "media_info", "gallery_name"] in error_locs(refused)
    assert stored(client) == before


def test_a_refused_package_is_accepted_once_fixed(client):
    data = encode(astronaut(), quality=62)
    key = upload(client, data)
    body = package(data, key)
    body["faces"].append({**body["faces"][0], "box": [300, 300, 300, 300]})
    assert client.post("/v1/media/sync", json=body).status_code == 422
    body["faces"][1]["box"] = [300, 300, 100, 100]
    fixed = client.post("/v1/media/sync", json=body)
    assert fixed.status_code == 202, fixed.text  # nothing of the refused one was kept
    assert fixed.json()["created"] is True and len(fixed.json()["faces"]) == 2


def test_a_png_face_thumbnail_is_stored_as_the_jpeg_it_is_served_as(client):
    data = encode(astronaut(), quality=71)
    key = upload(client, data, "IMG_0071.JPG")
    body = package(data, key)
    png = io.BytesIO()
    Image.new("RGB", (150, 150), (20, 150, 120)).save(png, "PNG")
    body["faces"][0]["thumbnail_b64"] = base64.b64encode(png.getvalue()).decode()
    response = client.post("/v1/media/sync", json=body)
    assert response.status_code == 202, response.text
    (face,) = client.get(f"/v1/media/{response.json()['media_id']}").json()["faces"]
    thumbnail = client.get(face["thumbnail_url"])
    assert thumbnail.status_code == 200
    assert thumbnail.content[:3] == b"\xff\xd8\xff"
    assert Image.open(io.BytesIO(thumbnail.content)).size == (150, 150)
