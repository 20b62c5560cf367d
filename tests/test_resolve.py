"""Duplicates resolved through the real server: a near-duplicate group resolved with one call
(the suggestion: the larger photo), the copy trashed (gone from lists, search and the groups,
kept in /v1/trash), the kept photo with the union of the metadata and the copy's person on its
own face, undo restoring exactly the state before; turned and mirrored copies found and named;
"not duplicates" remembered by the bytes, so a re-ingest never proposes the pair again; the
trash restored and purged (an original another row uses kept); other tenants' and other
collections' ids a 404 with nothing changed."""

from __future__ import annotations

import io
import json
import time

import pytest
import skimage.data
from PIL import Image

from busque.runtime import Runtime
from tests.conftest import wait_for
from tests.face_photos import astronaut, encode
from tests.test_jobs_api import assert_error

COLLECTION = "resolving"


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def ingest(client, data: bytes, collection: str = COLLECTION, **metadata) -> str:
    response = client.post(
        "/v1/ingest",
        files={"image": ("p.jpg", data, "image/jpeg")},
        data={"collection": collection, "metadata": json.dumps(metadata)},
    )
    assert response.status_code == 202, response.text
    assert wait_for(client, response.json()["job_id"], 120)["status"] == "succeeded"
    return response.json()["media_id"]


def near_groups(client, collection: str = COLLECTION) -> list[set[str]]:
    found = client.get("/v1/duplicates", params={"collection": collection}).json()
    return [set(group) for group in found["near"]]


def listed(client, collection: str = COLLECTION) -> set[str]:
    page = client.get("/v1/media", params={"collection": collection, "limit": 200}).json()
    return {m["id"] for m in page["data"]}


def eventually(check, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def photos(client_module):
    """The original, a smaller recompressed copy of it, and an unrelated photo."""
    photo = astronaut()
    original = ingest(client_module, jpeg(photo), captured_at="2009-07-14T10:22:01")
    small = jpeg(photo.resize((photo.width * 3 // 4, photo.height * 3 // 4)), quality=70)
    copy = ingest(client_module, small, album="holiday", camera="phone")
    other = ingest(client_module, encode(Image.new("RGB", (300, 200), (20, 140, 60))))
    return {"original": original, "copy": copy, "other": other, "copy_bytes": small}


@pytest.fixture(scope="module")
def client_module(app):
    with app.client() as client:
        yield client


def test_resolve_trashes_the_copy_and_undo_restores_exactly(client_module, photos):
    client = client_module
    original, copy = photos["original"], photos["copy"]
    assert {original, copy} in near_groups(client)
    found = client.get("/v1/duplicates", params={"collection": COLLECTION}).json()
    assert found["complete"] is True  # a small collection's pair search ends within the wait
    index = [set(g) for g in found["near"]].index({original, copy})
    assert found["near_suggested"][index] == original  # the larger one
    (group,) = [g for g in found["groups"] if original in g["media_ids"]]
    assert group["media_ids"] == [original, copy] and group["suggested"] == original
    (pair,) = group["pairs"]
    assert {pair["a"], pair["b"]} == {original, copy} and "phash" in pair["why"]
    assert pair["phash_distance"] <= found["radius"]
    assert group["savings_bytes"] == client.get(f"/v1/media/{copy}").json()["bytes"]
    assert photos["other"] not in {m for g in found["groups"] for m in g["media_ids"]}
    # The page's items come with it, thumbnails signed, so a reviewer needs no other call.
    shown = {m for g in found["groups"] for m in g["media_ids"]}
    assert set(found["items"]) == shown
    assert found["items"][copy]["bytes"] == group["savings_bytes"]
    assert client.get(found["items"][original]["thumbnail_url"]).status_code == 200
    before = client.get(f"/v1/media/{original}").json()["metadata"]
    # The copy's face names a person; the original's same face names nobody.
    (copy_face,) = client.get(f"/v1/media/{copy}").json()["faces"]
    (own_face,) = client.get(f"/v1/media/{original}").json()["faces"]
    client.patch(f"/v1/faces/{own_face['id']}", json={"person_id": None})
    named = client.patch(f"/v1/faces/{copy_face['id']}", json={"person_id": "new"})
    person = named.json()["person_id"]
    assert person

    done = client.post(
        "/v1/duplicates/resolve",
        json={"collection": COLLECTION, "groups": [{"media_ids": [copy, original]}]},
    )
    assert done.status_code == 200, done.text
    (group,) = done.json()["groups"]
    assert group == {"kept": [original], "trashed": [copy], "suggested": original}
    kept = client.get(f"/v1/media/{original}").json()
    assert kept["metadata"] == {**before, "album": "holiday", "camera": "phone"}
    # The kept photo shows the copy's person on its own face at the same place.
    assert [(f["id"], f["person_id"]) for f in kept["faces"]] == [(own_face["id"], person)]
    assert client.get(f"/v1/media/{copy}").json()["status"] == "trashed"
    assert copy not in listed(client) and original in listed(client)
    assert not any(copy in g for g in near_groups(client))
    trash = client.get("/v1/trash", params={"collection": COLLECTION}).json()["data"]
    assert [m["id"] for m in trash] == [copy] and trash[0]["thumbnail_url"]
    assert trash[0]["resolution_id"] == done.json()["resolution_id"]

    # The copy's bytes ingested again are flagged as rejected before.
    again = client.post(
        "/v1/ingest",
        files={"image": ("again.jpg", photos["copy_bytes"], "image/jpeg")},
        data={"collection": "elsewhere"},
    ).json()
    assert again["previously_rejected"] == copy

    # Search no longer finds the trashed copy.
    def search_ids() -> list[str]:
        found = client.post(
            "/v1/search",
            files={"image": ("q.jpg", photos["copy_bytes"], "image/jpeg")},
            data={"collection": COLLECTION, "k": "5"},
        ).json()["matches"]
        return [m["media_id"] for m in found]

    eventually(lambda: copy not in search_ids())

    undone = client.post(f"/v1/duplicates/resolutions/{done.json()['resolution_id']}/undo")
    assert undone.status_code == 200 and undone.json()["restored"] == [copy]
    assert client.get(f"/v1/media/{original}").json()["metadata"] == before
    (face,) = client.get(f"/v1/media/{original}").json()["faces"]
    assert face["person_id"] is None  # as it was before the resolution
    assert client.get(f"/v1/media/{copy}").json()["status"] == "indexed"
    eventually(lambda: {original, copy} in near_groups(client))  # once the Matcher re-adds it
    eventually(lambda: copy in search_ids())
    twice = client.post(f"/v1/duplicates/resolutions/{done.json()['resolution_id']}/undo")
    assert_error(twice, 409, "cannot_undo")


def test_not_duplicates_sticks_to_the_bytes(client_module, app):
    client = client_module
    photo = astronaut().rotate(0).crop((40, 40, 480, 480))
    a = ingest(client, jpeg(photo), collection="decisions")
    b_bytes = jpeg(photo.resize((300, 300)), quality=60)
    b = ingest(client, b_bytes, collection="decisions")
    assert {a, b} in near_groups(client, "decisions")
    recorded = client.post("/v1/duplicates/not-duplicates", json={"media_ids": [a, b]})
    assert recorded.status_code == 200 and recorded.json()["pairs_recorded"] == 1
    assert near_groups(client, "decisions") == []
    # The same bytes again (a re-ingest, a rescan): the pair is still decided.
    b2 = ingest(client, b_bytes, collection="decisions")
    assert near_groups(client, "decisions") == [{b, b2}]
    (group,) = client.get("/v1/duplicates", params={"collection": "decisions"}).json()["groups"]
    assert set(group["media_ids"]) == {b, b2} and "exact" in group["pairs"][0]["why"]
    assert (
        client.post("/v1/duplicates/not-duplicates", json={"media_ids": [a, b]}).json()[
            "pairs_recorded"
        ]
        == 0
    )


def test_turned_and_mirrored_copies_are_found_and_say_so(client_module):
    """A quarter turn and a mirror of a photo are 20-30 pHash bits from it: found through the
    pHashes of its turns and mirrors, each pair saying which."""
    client = client_module
    photo = Image.fromarray(skimage.data.chelsea()).convert("RGB")
    original = ingest(client, jpeg(photo), collection="turns")
    turned = ingest(client, jpeg(photo.transpose(Image.Transpose.ROTATE_90)), collection="turns")
    mirror = ingest(
        client, jpeg(photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)), collection="turns"
    )
    unrelated = ingest(client, jpeg(astronaut().resize((300, 300))), collection="turns")
    found = client.get("/v1/duplicates", params={"collection": "turns", "min_cosine": 1}).json()
    (group,) = found["groups"]
    assert set(group["media_ids"]) == {original, turned, mirror}
    why = {frozenset((p["a"], p["b"])): p for p in group["pairs"]}
    assert "rotated" in why[frozenset((original, turned))]["why"]
    assert why[frozenset((original, turned))]["transform"] in ("rot90", "rot270")
    assert "mirrored" in why[frozenset((original, mirror))]["why"]
    assert why[frozenset((original, mirror))]["phash_distance"] <= found["radius"]
    assert unrelated not in group["media_ids"]


def test_a_hybrid_score_finds_what_neither_threshold_does(client_module):
    """A 20% crop is far in pHash bits and below a strict min_cosine: with min_score, the hybrid
    score of both (the pHash at best over the turns) groups it with its original, saying so;
    an unrelated photo stays out."""
    client = client_module
    photo = Image.fromarray(skimage.data.chelsea()).convert("RGB")
    w, h = photo.size
    crop = photo.crop((w // 10, h // 10, w - w // 10, h - h // 10))
    original = ingest(client, jpeg(photo), collection="hybrid")
    cropped = ingest(client, jpeg(crop), collection="hybrid")
    ingest(client, jpeg(astronaut().resize((300, 300))), collection="hybrid")
    strict = {"collection": "hybrid", "radius": 2, "min_cosine": 0.99}
    assert client.get("/v1/duplicates", params=strict).json()["groups"] == []
    found = client.get("/v1/duplicates", params=strict | {"min_score": 0.5}).json()
    assert found["min_score"] == 0.5
    (group,) = found["groups"]
    assert set(group["media_ids"]) == {original, cropped}
    (pair,) = group["pairs"]
    assert pair["why"] == ["hybrid"] and pair["cosine"] < 0.99 and pair["score"] >= 0.5
    bad = client.get("/v1/duplicates", params=strict | {"min_score": 2})
    assert_error(bad, 422, "invalid_request")


def test_two_shots_of_one_scene_are_not_duplicates(client_module):
    """The two views of a stereo pair are 4 pHash bits and cosine 0.9 apart, as close as an edit
    is to its original; aligned pixel for pixel they disagree where the parallax moves things,
    so they are not grouped, while a captioned copy of one view is."""
    client = client_module
    left, right = (Image.fromarray(view) for view in skimage.data.stereo_motorcycle()[:2])
    captioned = Image.new("RGB", (left.width, left.height + 60), (20, 20, 20))
    captioned.paste(left, (0, 0))
    ids = [ingest(client, jpeg(im), collection="scenes") for im in (left, right, captioned)]
    found = client.get("/v1/duplicates", params={"collection": "scenes", "min_cosine": 0.5})
    assert found.status_code == 200, found.text
    assert found.json()["complete"] is True
    assert [set(group["media_ids"]) for group in found.json()["groups"]] == [{ids[0], ids[2]}]


def test_a_mirrored_copys_person_lands_on_the_kept_photos_own_face(client_module):
    """The copy's face box is mirrored back, not only scaled: it overlaps the kept photo's own
    face (the astronaut's face is off centre, so a box scaled alone would miss it)."""
    client = client_module
    photo = astronaut()
    original = ingest(client, jpeg(photo), collection="mirrors")
    mirrored = jpeg(photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((384, 384)), 80)
    copy = ingest(client, mirrored, collection="mirrors")
    (theirs,) = client.get(f"/v1/media/{copy}").json()["faces"]
    (own,) = client.get(f"/v1/media/{original}").json()["faces"]
    client.patch(f"/v1/faces/{own['id']}", json={"person_id": None})
    named = client.patch(f"/v1/faces/{theirs['id']}", json={"person_id": "new"})
    person = named.json()["person_id"]
    done = client.post(
        "/v1/duplicates/resolve",
        json={
            "collection": "mirrors",
            "groups": [{"media_ids": [original, copy], "keep": [original]}],
        },
    )
    assert done.status_code == 200, done.text
    kept = client.get(f"/v1/media/{original}").json()
    assert [(f["id"], f["person_id"]) for f in kept["faces"]] == [(own["id"], person)]


def test_bad_resolutions_change_nothing(client_module, photos, app, other_tenant_key):
    client = client_module
    original, copy, other = photos["original"], photos["copy"], photos["other"]
    with app.client(other_tenant_key) as stranger:
        theirs = ingest(stranger, jpeg(astronaut()), collection=COLLECTION)
        refused = stranger.post(
            "/v1/duplicates/resolve",
            json={"collection": COLLECTION, "groups": [{"media_ids": [theirs, original]}]},
        )
        assert_error(refused, 404, "media_not_found")
        assert_error(
            stranger.post("/v1/duplicates/not-duplicates", json={"media_ids": [theirs, copy]}),
            404,
            "media_not_found",
        )
    elsewhere = ingest(client, jpeg(astronaut().resize((256, 256))), collection="elsewhere-2")
    before = listed(client)
    for body, status, code in (
        ({"collection": COLLECTION, "groups": [{"media_ids": [original, elsewhere]}]}, 404,
         "media_not_found"),
        ({"collection": COLLECTION, "groups": [{"media_ids": [original, copy], "keep": [other]}]},
         422, "invalid_request"),
        ({"collection": COLLECTION, "groups": [{"media_ids": [original]}]}, 422,
         "invalid_request"),
        ({"collection": COLLECTION, "groups": [{"media_ids": [original, copy]},
                                               {"media_ids": [copy, other]}]}, 422,
         "invalid_request"),
        # The second group is bad: the first is not resolved either.
        ({"collection": COLLECTION, "groups": [{"media_ids": [original, copy]},
                                               {"media_ids": [other, "med_nope"]}]}, 404,
         "media_not_found"),
    ):  # fmt: skip
        assert_error(client.post("/v1/duplicates/resolve", json=body), status, code)
    assert listed(client) == before
    assert client.get("/v1/trash", params={"collection": COLLECTION}).json()["data"] == []
    assert_error(
        client.post("/v1/duplicates/resolutions/res_nope/undo"), 404, "resolution_not_found"
    )
    assert_error(client.post(f"/v1/trash/{original}/restore"), 404, "trashed_media_not_found")


def test_keep_the_caller_chose_then_restore_and_purge(client_module, photos, app):
    """Last: it purges the original."""
    client = client_module
    original, copy = photos["original"], photos["copy"]
    done = client.post(
        "/v1/duplicates/resolve",
        json={
            "collection": COLLECTION,
            "groups": [{"media_ids": [original, copy], "keep": [copy]}],
        },
    ).json()
    assert done["groups"][0]["trashed"] == [original]
    restored = client.post(f"/v1/trash/{original}/restore")
    assert restored.status_code == 200 and restored.json()["status"] == "indexed"
    # Restored by hand: the resolution cannot be undone any more.
    assert_error(
        client.post(f"/v1/duplicates/resolutions/{done['resolution_id']}/undo"), 409, "cannot_undo"
    )
    again = client.post(
        "/v1/duplicates/resolve",
        json={
            "collection": COLLECTION,
            "groups": [{"media_ids": [original, copy], "keep": [copy]}],
        },
    ).json()
    assert client.delete(f"/v1/trash/{original}").status_code == 204
    assert client.get(f"/v1/media/{original}").status_code == 404
    assert_error(client.delete(f"/v1/trash/{original}"), 404, "trashed_media_not_found")
    assert_error(
        client.post(f"/v1/duplicates/resolutions/{again['resolution_id']}/undo"),
        409,
        "cannot_undo",
    )


def test_purging_a_copy_keeps_the_original_bytes_another_item_uses(client_module, app):
    """The trashed copy's bytes ingested again (a second row on the same content-addressed
    original): purging the copy leaves the original for the new row; a decision about a purged
    or deleted item is a clear 404, nothing changed."""
    client = client_module
    photo = astronaut().crop((0, 0, 400, 400))
    keep = ingest(client, jpeg(photo), collection="purging")
    data = jpeg(photo.resize((300, 300)), quality=75)
    copy = ingest(client, data, collection="purging")
    done = client.post(
        "/v1/duplicates/resolve",
        json={"collection": "purging", "groups": [{"media_ids": [keep, copy]}]},
    ).json()
    assert done["groups"][0]["trashed"] == [copy]
    again = ingest(client, data, collection="purging-again")
    runtime = Runtime(app.settings)
    original_key = runtime.catalog.get(again)["original_key"]
    assert runtime.catalog.get(copy)["original_key"] == original_key  # stored once
    assert client.delete(f"/v1/trash/{copy}").status_code == 204
    eventually(lambda: runtime.janitor.sweep() == 0)
    assert runtime.objects.get(original_key) == data  # still there for `again`
    purged = {"collection": "purging", "groups": [{"media_ids": [keep, copy]}]}
    assert_error(client.post("/v1/duplicates/resolve", json=purged), 404, "media_not_found")
    assert_error(
        client.post("/v1/duplicates/not-duplicates", json={"media_ids": [keep, copy]}),
        404,
        "media_not_found",
    )
    assert client.delete(f"/v1/media/{keep}").status_code == 204
    assert_error(
        client.post(
            "/v1/duplicates/resolve",
            json={"collection": "purging", "groups": [{"media_ids": [keep, again]}]},
        ),
        404,
        "media_not_found",
    )
    assert client.get(f"/v1/media/{again}").json()["status"] == "indexed"
