"""Faces and people through the real app (Ray Serve over HTTP) with dlib's real weights on real
photos: faces on ingest, the faces job, face search, people clustering, rename, move, merge,
media detail, collection opt-out, bad input, other tenants, and scale to zero."""

from __future__ import annotations

import base64
import io
import time

import httpx
import pytest
from PIL import Image

from busque.models.faces import unavailable_reason
from tests.conftest import wait_for
from tests.face_photos import (
    astronaut,
    encode,
    grace_hopper,
    iou,
    mirrored,
    no_face,
    side_by_side,
    variants,
)

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))

ASTRONAUT_FACE = (179, 83, 88, 88)  # dlib HOG on the 512 px photo


@pytest.fixture(scope="module")
def family(app):
    """A tenant of its own (people are per tenant): its client, and every photo ingested."""
    from busque.cli import _key_store

    key = _key_store(app.settings).create("faces-family", "tests").key
    client = app.client(key)
    photos = {
        "eileen": variants(astronaut()),
        "grace": variants(grace_hopper()),
        "both": [encode(side_by_side(astronaut(), grace_hopper()), quality=90)],
    }
    ingested = {}
    for name, files in photos.items():
        for i, data in enumerate(files):
            response = client.post(
                "/v1/ingest",
                files={"image": (f"{name}{i}.jpg", data, "image/jpeg")},
                data={"collection": "family"},
            )
            assert response.status_code == 202, response.text
            ingested.setdefault(name, []).append(response.json())
    for accepted in ingested.values():
        for media in accepted:
            job = wait_for(client, media["job_id"], timeout=120)
            assert job["status"] == "succeeded", job
            media["result"] = job["result"]
    yield client, ingested
    client.close()


def test_ingest_finds_faces_with_boxes_thumbnails_and_people(family, app):
    client, ingested = family
    eileen = ingested["eileen"][1]  # same size as the original, recompressed
    (face,) = eileen["result"]["faces"]
    assert iou(face["box"], ASTRONAUT_FACE) > 0.6 and face["score"] > 0
    detail = client.get(f"/v1/media/{eileen['media_id']}").json()
    assert detail["faces_analyzed_at"] is not None
    (shown,) = detail["faces"]
    assert shown["id"] == face["id"] and shown["box"] == face["box"]
    thumb = httpx.get(shown["thumbnail_url"], timeout=30)
    assert thumb.status_code == 200
    assert Image.open(io.BytesIO(thumb.content)).size == (150, 150)
    both = ingested["both"][0]["result"]["faces"]
    assert len(both) == 2


def test_people_form_and_two_faces_of_one_photo_never_join(family):
    client, ingested = family
    people = client.get("/v1/people").json()["data"]
    assert len(people) == 2, people
    assert sorted(p["face_count"] for p in people) == [4, 4]  # 3 photos each + the composite
    faces = client.get(f"/v1/media/{ingested['both'][0]['media_id']}").json()["faces"]
    persons = [f["person_id"] for f in faces]
    assert None not in persons and len(set(persons)) == 2
    for person in people:
        assert httpx.get(person["cover_thumbnail_url"], timeout=30).status_code == 200
        media = client.get(f"/v1/people/{person['id']}/media").json()["data"]
        assert len(media) == 4


def test_faces_are_listed_by_person_photo_collection_and_unassigned(family, app, other_tenant_key):
    client, ingested = family
    every = client.get("/v1/faces", params={"collection": "family", "limit": 200}).json()
    assert len(every["data"]) == 8 and every["next_cursor"] is None  # 3 + 3 photos, 2 in one
    people = client.get("/v1/people").json()["data"]
    for person in people:
        theirs = client.get("/v1/faces", params={"person_id": person["id"]}).json()["data"]
        assert len(theirs) == 4 and {f["person_id"] for f in theirs} == {person["id"]}
    both = ingested["both"][0]["media_id"]
    assert len(client.get("/v1/faces", params={"media_id": both}).json()["data"]) == 2
    # Pages of 3 cover every face once.
    seen, cursor = [], None
    while True:
        page = client.get(
            "/v1/faces", params={"collection": "family", "limit": 3, "cursor": cursor}
        ).json()
        seen += [f["id"] for f in page["data"]]
        if not (cursor := page["next_cursor"]):
            break
    assert sorted(seen) == sorted(f["id"] for f in every["data"])
    # A face taken out of its person is listed as unassigned until it is given one again.
    face = client.get("/v1/faces", params={"person_id": people[0]["id"], "limit": 1}).json()
    (face,) = face["data"]
    assert client.patch(f"/v1/faces/{face['id']}", json={"person_id": None}).status_code == 200
    (alone,) = client.get("/v1/faces", params={"unassigned": "true"}).json()["data"]
    assert alone["id"] == face["id"] and alone["thumbnail_url"]
    client.patch(f"/v1/faces/{face['id']}", json={"person_id": people[0]["id"]})
    assert client.get("/v1/faces", params={"unassigned": "true"}).json()["data"] == []
    bad = client.get("/v1/faces", params={"unassigned": "true", "person_id": "x"})
    assert bad.status_code == 422
    assert client.get("/v1/faces", params={"cursor": "nope"}).status_code == 400
    with app.client(other_tenant_key) as other:
        assert other.get("/v1/faces", params={"media_id": both}).json()["data"] == []


def person_of(client, media: dict) -> str:
    (face,) = client.get(f"/v1/media/{media['media_id']}").json()["faces"]
    return face["person_id"]


def test_face_search_finds_the_person_in_a_mirror_image(family):
    client, ingested = family
    eileen = person_of(client, ingested["eileen"][0])
    response = client.post(
        "/v1/faces/search",
        files={"image": ("q.jpg", mirrored(astronaut()), "image/jpeg")},
        data={"k": "5"},
    )
    assert response.status_code == 200, response.text
    (face,) = response.json()["faces"]
    assert face["people"][0]["person_id"] == eileen
    assert face["people"][0]["distance"] < 0.6
    assert all(m["distance"] <= 0.6 for m in face["matches"])
    assert {m["person_id"] for m in face["matches"]} == {eileen}
    # JSON with base64, and a photo with no face: an empty list, not an error.
    empty = client.post(
        "/v1/faces/search", json={"image_base64": base64.b64encode(no_face()).decode()}
    )
    assert empty.status_code == 200 and empty.json()["faces"] == []


def test_rename_move_and_merge_people(family):
    client, ingested = family
    eileen = person_of(client, ingested["eileen"][0])
    grace = person_of(client, ingested["grace"][0])
    renamed = client.patch(f"/v1/people/{eileen}", json={"name": "Eileen Collins"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Eileen Collins"
    for odd in ("Eileen\nCollins", "\x1b[31mEileen", "Eileen \u202eCollins", "Ei\u200bleen"):
        refused = client.patch(f"/v1/people/{eileen}", json={"name": odd})
        assert refused.status_code == 422, refused.text
    family_name = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # a ZWNJ, as Persian writes
    assert (
        client.patch(f"/v1/people/{grace}", json={"name": family_name}).json()["name"]
        == family_name
    )
    assert client.get(f"/v1/people/{eileen}").json()["name"] == "Eileen Collins"

    # The composite photo holds both: its Grace face cannot join Eileen, and the people
    # cannot merge while they share it.
    both = client.get(f"/v1/media/{ingested['both'][0]['media_id']}").json()["faces"]
    grace_in_both = next(f for f in both if f["person_id"] == grace)
    moved = client.patch(f"/v1/faces/{grace_in_both['id']}", json={"person_id": eileen})
    assert moved.status_code == 409 and moved.json()["error"]["code"] == "same_photo"
    refused = client.post(f"/v1/people/{eileen}/merge", json={"person_id": grace})
    assert refused.status_code == 409

    # Moving a face: to nobody, then back.
    single = client.get(f"/v1/media/{ingested['grace'][0]['media_id']}").json()["faces"][0]
    out = client.patch(f"/v1/faces/{single['id']}", json={"person_id": None})
    assert out.status_code == 200 and out.json()["person_id"] is None
    assert client.get(f"/v1/people/{grace}").json()["face_count"] == 3
    back = client.patch(f"/v1/faces/{single['id']}", json={"person_id": grace})
    assert back.json()["person_id"] == grace

    # Once the composite's Grace face belongs to nobody, the merge goes through.
    client.patch(f"/v1/faces/{grace_in_both['id']}", json={"person_id": None})
    merged = client.post(f"/v1/people/{eileen}/merge", json={"person_id": grace})
    assert merged.status_code == 200, merged.text
    assert merged.json()["face_count"] == 7 and merged.json()["name"] == "Eileen Collins"
    assert client.get(f"/v1/people/{grace}").status_code == 404


def test_faces_job_and_collection_opt_out(family):
    client, _ = family
    assert client.put("/v1/collections/nofaces", json={"faces": False}).status_code == 200
    response = client.post(
        "/v1/ingest",
        files={"image": ("a.jpg", encode(astronaut(), quality=70), "image/jpeg")},
        data={"collection": "nofaces"},
    )
    media = response.json()
    job = wait_for(client, media["job_id"], timeout=60)
    assert job["status"] == "succeeded" and job["result"]["faces"] is None
    detail = client.get(f"/v1/media/{media['media_id']}").json()
    assert detail["faces"] == [] and detail["faces_analyzed_at"] is None
    listed = {c["collection"]: c for c in client.get("/v1/collections").json()["data"]}
    assert listed["nofaces"]["faces"] is False and listed["family"]["faces"] is True

    created = client.post(
        "/v1/jobs",
        json={"model": "faces", "input": {"collection": "nofaces", "missing_only": True}},
    )
    assert created.status_code == 202, created.text
    job = wait_for(client, created.json()["id"], timeout=60)
    assert job["status"] == "succeeded", job
    assert job["result"]["analyzed"] == 1 and job["result"]["faces"] == 1
    assert len(client.get(f"/v1/media/{media['media_id']}").json()["faces"]) == 1
    bad = client.post("/v1/jobs", json={"model": "faces", "input": {}})
    assert bad.status_code == 422


def test_bad_input_and_other_tenants(family, client):
    family_client, ingested = family
    junk = family_client.post(
        "/v1/faces/search", files={"image": ("x.jpg", b"not an image", "image/jpeg")}
    )
    assert junk.status_code == 422 and junk.json()["error"]["code"] == "invalid_image"
    empty = family_client.post("/v1/faces/search", files={"image": ("x.jpg", b"", "image/jpeg")})
    assert empty.status_code == 422
    bomb = encode(Image.new("L", (20000, 20000)), "PNG")
    assert (
        family_client.post(
            "/v1/faces/search", files={"image": ("b.png", bomb, "image/png")}
        ).status_code
        == 413
    )
    assert family_client.post("/v1/faces/search", json={"k": 0}).status_code == 422
    assert (
        family_client.post(
            "/v1/faces/search", content=b"{", headers={"content-type": "application/json"}
        ).status_code
        == 400
    )
    tiny = encode(Image.new("RGB", (8, 8)), "PNG")
    ok = family_client.post("/v1/faces/search", files={"image": ("t.png", tiny, "image/png")})
    assert ok.status_code == 200 and ok.json()["faces"] == []

    # The admin key is another tenant: none of the family's people or faces exist for it.
    person = family_client.get("/v1/people").json()["data"][0]["id"]
    face = family_client.get(f"/v1/media/{ingested['eileen'][0]['media_id']}").json()["faces"][0]
    assert client.get(f"/v1/people/{person}").status_code == 404
    assert client.get(f"/v1/people/{person}/media").status_code == 404
    assert client.patch(f"/v1/people/{person}", json={"name": "x"}).status_code == 404
    assert client.get(f"/v1/faces/{face['id']}").status_code == 404
    assert client.patch(f"/v1/faces/{face['id']}", json={"person_id": None}).status_code == 404
    mine = client.post("/v1/people/per_missing/merge", json={"person_id": person})
    assert mine.status_code == 404


def test_deleting_media_removes_its_faces(family):
    client, _ = family
    response = client.post(
        "/v1/ingest",
        files={"image": ("g.jpg", encode(grace_hopper(), quality=60), "image/jpeg")},
        data={"collection": "family"},
    )
    media = response.json()
    job = wait_for(client, media["job_id"], timeout=60)
    (face,) = job["result"]["faces"]
    thumbnail = client.get(f"/v1/faces/{face['id']}").json()["thumbnail_url"]
    assert httpx.get(thumbnail, timeout=30).status_code == 200
    assert client.delete(f"/v1/media/{media['media_id']}").status_code == 204
    assert client.get(f"/v1/faces/{face['id']}").status_code == 404
    assert httpx.get(thumbnail, timeout=30).status_code == 404


def test_face_analyzer_scales_to_zero_and_wakes_for_the_next_call(family, app):
    from ray import serve

    client, _ = family
    deadline = time.monotonic() + 90
    while True:
        status = serve.status().applications[app.settings.serve.app_name]
        replicas = status.deployments["FaceAnalyzer"].replica_states
        if not replicas.get("RUNNING"):
            break
        assert time.monotonic() < deadline, f"FaceAnalyzer never scaled to zero: {replicas}"
        time.sleep(1)
    response = client.post(
        "/v1/faces/search", files={"image": ("q.jpg", mirrored(astronaut()), "image/jpeg")}
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["faces"]) == 1
