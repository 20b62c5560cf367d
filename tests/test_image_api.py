"""Image generation through the real app: a tiny random Stable Diffusion pipeline the tests build
(no real weights exist offline), run end to end: job -> progress per denoising step -> a PNG
artifact with a presigned URL; img2img avatars from an uploaded photo; bad input refused at
submission."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image

from tests.conftest import wait_for
from tests.face_photos import astronaut, encode
from tests.test_events import read_job_sse

SMALL = {"steps": 2, "width": 64, "height": 64}


def upload(client, data: bytes, name: str = "me.jpg") -> str:
    slot = client.post("/v1/uploads", json={"filename": name, "content_type": "image/jpeg"})
    assert slot.status_code == 201, slot.text
    slot = slot.json()
    put = httpx.put(slot["upload_url"], content=data, headers=slot["headers"], timeout=30)
    assert put.status_code in (200, 201, 204), put.text
    return slot["object_key"]


def submit(client, model: str, inputs: dict):
    return client.post("/v1/jobs", json={"model": model, "input": inputs})


def artifact_bytes(client, job_id: str) -> dict[str, bytes]:
    listed = client.get(f"/v1/jobs/{job_id}/artifacts").json()["data"]
    return {a["name"]: httpx.get(a["url"], timeout=30).content for a in listed}


def test_txt2img_reports_each_step_and_stores_a_png(client):
    created = submit(client, "stable-diffusion", {"prompt": "a red fox", "seed": 1, **SMALL})
    assert created.status_code == 202, created.text
    assert created.headers["location"] == f"/v1/jobs/{created.json()['id']}"
    events = read_job_sse(client, created.json()["id"], timeout=120)
    steps = [e["data"]["data"] for e in events if e["event"] == "job.progress"]
    assert [round(p["progress"]) for p in steps][-1] == 100 and len(steps) >= 2
    assert all("step" in p["message"] for p in steps)
    (result,) = [e["data"]["data"]["result"] for e in events if e["event"] == "job.result"]
    assert result["mode"] == "txt2img" and result["seed"] == 1
    png = artifact_bytes(client, created.json()["id"])["image.png"]
    assert Image.open(io.BytesIO(png)).size == (64, 64)
    # The job itself names the image with a fresh presigned URL.
    (image,) = client.get(f"/v1/jobs/{created.json()['id']}").json()["result"]["images"]
    assert httpx.get(image["url"], timeout=30).content == png


def test_a_model_without_weights_is_listed_unavailable_and_refused(client):
    described = client.get("/v1/models/weightless").json()
    assert described["available"] is False
    assert described["unavailable_reason"] == "no weights for this fixture"
    response = client.post("/v1/jobs", json={"model": "weightless", "input": {"seconds": 0}})
    assert response.status_code == 422 and response.json()["error"]["code"] == "model_unavailable"


def test_the_same_seed_gives_the_same_image(client):
    images = []
    for seed in (7, 7, 8):
        job = wait_for(
            client,
            submit(client, "stable-diffusion", {"prompt": "a cat", "seed": seed, **SMALL}).json()[
                "id"
            ],
            120,
        )
        assert job["status"] == "succeeded", job
        images.append(artifact_bytes(client, job["id"])["image.png"])
    assert images[0] == images[1] != images[2]


def test_avatar_from_an_uploaded_photo(client):
    key = upload(client, encode(astronaut(), quality=90))
    created = submit(
        client, "avatar", {"image_key": key, "style": "watercolor", "strength": 0.5, **SMALL}
    )
    assert created.status_code == 202, created.text
    job = wait_for(client, created.json()["id"], 120)
    assert job["status"] == "succeeded", job
    assert job["result"]["mode"] == "img2img"
    files = artifact_bytes(client, job["id"])
    assert Image.open(io.BytesIO(files["image.png"])).size == (64, 64)
    assert Image.open(io.BytesIO(files["input.png"])).size == (64, 64)  # the input is kept


def test_catalog_lists_image_models(client):
    for model in ("stable-diffusion", "avatar"):
        described = client.get(f"/v1/models/{model}").json()
        assert described["available"] and described["kind"] == "image-generation"


@pytest.mark.parametrize(
    "model,inputs,code",
    [
        ("stable-diffusion", {"prompt": ""}, "invalid_input"),
        ("stable-diffusion", {"prompt": "x", "steps": 10_000}, "invalid_input"),
        ("stable-diffusion", {"prompt": "x", "width": 65}, "invalid_input"),
        ("stable-diffusion", {"prompt": "x", "width": 4096, "height": 4096}, "invalid_input"),
        ("stable-diffusion", {"prompt": "x", "guidance": 99}, "invalid_input"),
        ("stable-diffusion", {"prompt": "x", "guidance": "NaN"}, "invalid_input"),
        ("avatar", {"style": "cubism", "image_key": "x"}, "invalid_input"),
        ("avatar", {"style": "anime"}, "invalid_input"),
    ],
)
def test_bad_generation_input_is_refused(client, model, inputs, code):
    response = submit(client, model, inputs)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code


def test_avatar_photo_must_be_an_image_of_this_tenant(client, other_tenant_key, app):
    not_image = upload(client, b"this is not a photo at all", "notes.jpg")
    refused = submit(client, "avatar", {"image_key": not_image, "style": "anime", **SMALL})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_image"
    whole = encode(astronaut(), quality=80)
    truncated = upload(client, whole[: len(whole) // 3], "cut.jpg")
    refused = submit(client, "avatar", {"image_key": truncated, "style": "anime", **SMALL})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_image"
    missing = submit(client, "avatar", {"image_key": "nope/uploads/x.jpg", "style": "anime"})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "object_not_found"
    mine = upload(client, whole)
    with app.client(other_tenant_key) as other:
        theirs = submit(other, "avatar", {"image_key": mine, "style": "anime", **SMALL})
    assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "object_not_found"


def test_a_parameter_the_model_does_not_take_is_refused(client):
    """Image models take everything in `input`: a `params.seed` was dropped without a word."""
    response = client.post(
        "/v1/jobs",
        json={
            "model": "stable-diffusion",
            "input": {"prompt": "x", **SMALL},
            "params": {"seed": 5},
        },
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_input"
