"""Ingest, search, match and the catalog through the real app: real EfficientNet weights, real
photos from scikit-image, the hybrid FAISS + pHash index in the Matcher."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
import skimage.data
from PIL import Image, ImageEnhance

from busque.api.timing import parse_server_timing
from tests.conftest import wait_for
from tests.test_jobs_api import assert_error

PHOTOS = ("chelsea", "astronaut", "coffee", "rocket")


def jpeg(array: np.ndarray | Image.Image, quality: int = 90, size: int | None = 512) -> bytes:
    image = array if isinstance(array, Image.Image) else Image.fromarray(array)
    image = image.convert("RGB")
    if size:
        image.thumbnail((size, size))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def photo(name: str) -> np.ndarray:
    return getattr(skimage.data, name)()


def ingest(client, data: bytes, collection: str, **fields) -> dict:
    form = {"collection": collection, **{k: str(v) for k, v in fields.items()}}
    response = client.post("/v1/ingest", files={"image": ("p.jpg", data, "image/jpeg")}, data=form)
    assert response.status_code == 202, response.text
    return response.json()


@pytest.fixture(scope="module")
def pets(client_module):
    """Four real photos ingested into a fresh collection; returns (collection, {name: media})."""
    collection = f"pets-{int(time.time() * 1000)}"
    accepted = {
        name: ingest(
            client_module, jpeg(photo(name)), collection, metadata=json.dumps({"name": name})
        )
        for name in PHOTOS
    }
    for media in accepted.values():
        assert wait_for(client_module, media["job_id"], timeout=120)["status"] == "succeeded"
    return collection, accepted


@pytest.fixture(scope="module")
def client_module(app):
    with app.client() as c:
        yield c


def test_ingest_answers_at_once_with_phash_and_sha256(client_module):
    from busque.media.phash import phash_bytes

    # a JPEG comment makes bytes no other test (in any order) has ingested
    note = f"ingest test {time.time_ns()}".encode()
    plain = jpeg(photo("horse"))
    data = plain[:2] + b"\xff\xfe" + (len(note) + 2).to_bytes(2, "big") + note + plain[2:]
    accepted = ingest(client_module, data, "ingest-basic", k=3)
    assert accepted["status"] == "queued"
    assert accepted["phash"] == phash_bytes(data) and len(accepted["sha256"]) == 64
    assert accepted["duplicate_of"] is None
    job = wait_for(client_module, accepted["job_id"], timeout=120)
    assert job["status"] == "succeeded", job
    assert job["result"]["media_id"] == accepted["media_id"]
    media = client_module.get(f"/v1/media/{accepted['media_id']}").json()
    assert media["status"] == "indexed" and media["embedding_model"] == "efficientnet-lite0"
    for url in (media["image_url"], media["thumbnail_url"]):
        assert client_module.get(url).status_code == 200  # signed URL, no key needed


def test_chelsea_is_a_cat_and_its_lookalike_comes_first(client_module, pets):
    collection, accepted = pets
    result = wait_for(client_module, accepted["chelsea"]["job_id"])["result"]
    assert result["species"] == "cat"
    copy = jpeg(ImageEnhance.Brightness(Image.fromarray(photo("chelsea"))).enhance(1.2), 40)
    response = client_module.post(
        "/v1/search",
        files={"image": ("q.jpg", copy, "image/jpeg")},
        data={"collection": collection, "k": "3"},
    )
    found = response.json()
    top = found["matches"][0]
    assert top["media_id"] == accepted["chelsea"]["media_id"] and top["rank"] == 1
    assert top["phash_distance"] <= 8 and top["score"] > found["matches"][1]["score"]
    assert top["metadata"] == {"name": "chelsea"} and top["thumbnail_url"]
    stages = parse_server_timing(response.headers["server-timing"])
    top_level = ["request", "query", "match", "catalog"]
    assert sorted(stages) == sorted([*top_level, "embed-prepare", "embed-model", "total"])
    assert stages["total"] >= sum(stages[name] for name in top_level) > 0
    # the Embedder's own stages happen within the query's
    assert 0 < stages["embed-prepare"] + stages["embed-model"] <= stages["query"]
    assert "embed-model;dur=" in response.headers["server-timing"]
    assert 'desc="batch of 1"' in response.headers["server-timing"]
    # the query's pHash (computed by the Embedder) is the one ingest computed for the same bytes
    same = client_module.post(
        "/v1/search",
        files={"image": ("q.jpg", jpeg(photo("chelsea")), "image/jpeg")},
        data={"collection": collection, "k": "1"},
    ).json()["matches"][0]
    assert same["phash_distance"] == 0 and same["exact_duplicate"]


def test_search_modes_filters_and_match_contract(client_module, pets):
    collection, accepted = pets
    chelsea = accepted["chelsea"]
    by_phash = client_module.post(
        "/v1/search",
        json={"phash": chelsea["phash"], "collection": collection, "mode": "phash", "k": 1},
    ).json()
    assert by_phash["matches"][0]["media_id"] == chelsea["media_id"]
    by_id = client_module.post(
        "/v1/search", json={"media_id": chelsea["media_id"], "k": 3, "mode": "visual"}
    ).json()
    assert chelsea["media_id"] not in [m["media_id"] for m in by_id["matches"]]  # itself excluded
    filtered = client_module.post(
        "/v1/search", json={"media_id": chelsea["media_id"], "k": 3, "filters": {"name": "coffee"}}
    ).json()
    assert [m["metadata"]["name"] for m in filtered["matches"]] == ["coffee"]
    matched = client_module.post(
        "/v1/match",
        json={
            "job_id": "bp-1",
            "phash": chelsea["phash"],
            "k": 2,
            "use_hybrid": False,
            "collection": collection,
            "metadata": {},
        },
    ).json()
    assert matched["job_id"] == "bp-1" and matched["duration_ms"] >= 0
    first = matched["matches"][0]
    assert first["image_id"] == chelsea["media_id"] and first["rank"] == 1
    assert set(first) == {"rank", "image_id", "breed", "score", "distance", "image_path"}


def test_exact_duplicate_is_flagged_and_stored_once(client_module, app):
    data = jpeg(photo("camera"), size=300)
    first = ingest(client_module, data, "dupes")
    wait_for(client_module, first["job_id"])
    second = ingest(client_module, data, "dupes")
    assert second["duplicate_of"] == first["media_id"]
    assert wait_for(client_module, second["job_id"])["result"]["duplicate_of"] == first["media_id"]
    groups = client_module.get("/v1/duplicates", params={"collection": "dupes"}).json()
    assert [first["media_id"], second["media_id"]] in [sorted(g) for g in groups["exact"]]
    assert any(set(g) >= {first["media_id"], second["media_id"]} for g in groups["near"])
    by_threshold = client_module.get(
        "/v1/duplicates", params={"collection": "dupes", "threshold": 0}
    ).json()
    assert by_threshold["radius"] == 0 and by_threshold["exact"] == groups["exact"]
    both = {"collection": "dupes", "threshold": 2, "radius": 3}
    assert_error(client_module.get("/v1/duplicates", params=both), 422, "invalid_request")
    originals = list((app.settings.storage.local_dir / "data").rglob(f"{first['sha256']}.jpg"))
    assert len(originals) == 1


def test_delete_removes_it_from_search_and_storage(client_module):
    accepted = ingest(client_module, jpeg(photo("moon")), "deletions")
    wait_for(client_module, accepted["job_id"])
    assert client_module.delete(f"/v1/media/{accepted['media_id']}").status_code == 204
    assert_error(client_module.get(f"/v1/media/{accepted['media_id']}"), 404, "media_not_found")
    found = client_module.post(
        "/v1/search", json={"phash": accepted["phash"], "collection": "deletions", "mode": "phash"}
    ).json()
    assert accepted["media_id"] not in [m["media_id"] for m in found["matches"]]


def test_bad_images_get_clear_errors_and_store_nothing(client_module, app):
    def post(data: bytes, **extra):
        return client_module.post(
            "/v1/ingest",
            files={"image": ("x.jpg", data, "image/jpeg")},
            data={"collection": "bad", **extra},
        )

    before = client_module.get("/v1/media", params={"status": "all", "limit": 200}).json()
    good = jpeg(photo("coins"))
    assert_error(post(b"not an image at all"), 422, "invalid_image")
    assert_error(post(good[: len(good) // 2]), 422, "invalid_image")
    assert_error(post(b""), 422, "invalid_image")
    error = assert_error(post(bomb_png(20000, 20000)), 413, "image_too_large")
    assert (
        error["message"]
        == f"image is 400000000 pixels, the limit is {app.settings.media.max_pixels}"
    )
    assert_error(post(b"x" * (app.settings.media.max_upload_bytes + 1)), 413, "payload_too_large")
    assert_error(post(b"%PDF-1.4\n%..."), 415, "unsupported_media_type")
    assert_error(post(good, k="0"), 422, "invalid_request")
    assert_error(post(good, k="1000000"), 422, "invalid_request")
    assert_error(
        client_module.post("/v1/search", json={"phash": "00", "k": 1}), 422, "invalid_request"
    )
    assert_error(client_module.post("/v1/search", json={"text": "a cat"}), 422, "no_text_tower")
    after = client_module.get("/v1/media", params={"status": "all", "limit": 200}).json()
    assert len(after["data"]) == len(before["data"])
    assert client_module.get("/healthz").status_code == 200


def test_search_by_a_bad_image_is_a_clear_error(client_module):
    """A query image is decoded by the Embedder, not at upload: its errors come back as the
    same 4xx answers, and the Embedder keeps serving."""

    def search(data: bytes):
        return client_module.post(
            "/v1/search", files={"image": ("q.jpg", data, "image/jpeg")}, data={"k": "3"}
        )

    good = jpeg(photo("coins"))
    assert_error(search(b"not an image at all"), 422, "invalid_image")
    assert_error(search(good[: len(good) // 2]), 422, "invalid_image")
    assert_error(search(b""), 422, "invalid_image")
    assert_error(search(bomb_png(20000, 20000)), 413, "image_too_large")
    assert_error(search(b"%PDF-1.4\n%..."), 415, "unsupported_media_type")
    assert search(good).status_code == 200


def test_fields_busque_cannot_store_are_refused_and_store_nothing(app, client_module):
    """Collection names that cannot name an index folder ("." and ".."), and JSON fields with
    NaN, lone surrogates, NUL or deep nesting: each a 4xx before anything is stored (they used
    to be stored, then fail every read of them with a 500)."""

    def post(**fields):
        return client_module.post(
            "/v1/ingest",
            files={"image": ("x.jpg", jpeg(photo("coins")), "image/jpeg")},
            data={"collection": "odd-fields", **fields},
        )

    before = client_module.get("/v1/media", params={"status": "all", "limit": 200}).json()
    for name in (".", ".."):
        assert_error(post(collection=name), 422, "invalid_request")
        assert_error(
            client_module.post(
                "/v1/search", json={"phash": "978d441804f5c75a", "collection": name}
            ),
            422,
            "invalid_request",
        )
        assert_error(
            client_module.get("/v1/duplicates", params={"collection": name}), 422, "invalid_request"
        )
    for metadata in ('{"a": NaN}', '{"a": Infinity}', '{"a": "\\ud800"}', '{"a": "\\u0000"}'):
        error = assert_error(post(metadata=metadata), 422, "invalid_request")
        assert error["message"].startswith("metadata must be a JSON object: ")
    assert_error(post(metadata='{"a": ' * 40 + "1" + "}" * 40), 422, "invalid_request")
    assert_error(post(metadata="[" * 10000), 422, "invalid_request")
    # Metadata is returned by every list and search: 20 MiB of it made each answer 80 MiB.
    media = app.settings.media
    big = json.dumps({"notes": "x" * media.max_metadata_bytes})
    error = assert_error(post(metadata=big), 413, "payload_too_large")
    assert error["details"] == {"max_bytes": media.max_metadata_bytes}
    deep = "{" + '"a": {' * media.max_metadata_depth + "}" * media.max_metadata_depth + "}"
    assert "nested deeper" in assert_error(post(metadata=deep), 422, "invalid_request")["message"]
    search = {"phash": "978d441804f5c75a", "collection": "odd-fields"}
    for body in (b'{"phash": "978d441804f5c75a", "min_score": NaN}', b"[" * 10000):
        response = client_module.post(
            "/v1/search", content=body, headers={"content-type": "application/json"}
        )
        assert_error(response, 400, "invalid_json")
    deep = '{"a": ' * 40 + "1" + "}" * 40
    response = client_module.post(
        "/v1/search",
        files={"image": ("q.jpg", jpeg(photo("coins")), "image/jpeg")},
        data={"filters": deep},
    )
    assert_error(response, 422, "invalid_request")
    response = client_module.post(
        "/v1/search",
        content=f'{{"phash": "{search["phash"]}", "filters": {deep}}}'.encode(),
        headers={"content-type": "application/json"},
    )
    assert_error(response, 400, "invalid_json")
    for path in ("/v1/search", "/v1/faces/search"):
        for content_type in ("text/plain", "application/x-www-form-urlencoded"):
            response = client_module.post(
                path,
                content=b'{"phash": "978d441804f5c75a"}',
                headers={"content-type": content_type},
            )
            assert_error(response, 415, "unsupported_media_type")
    after = client_module.get("/v1/media", params={"status": "all", "limit": 200}).json()
    assert len(after["data"]) == len(before["data"])
    assert client_module.get("/v1/media", params={"collection": "odd-fields"}).status_code == 200


def test_search_by_an_image_over_4_mib(client_module):
    """Serve's replicas talk gRPC, whose default 4 MiB message cap turned a photo between 4 and
    25 MiB (the upload limit) into a 500 on its way to the Embedder."""
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, size=(1600, 1600, 3), dtype=np.uint8)
    data = jpeg(noise, quality=100, size=None)
    assert len(data) > 4 * 2**20
    response = client_module.post(
        "/v1/search", files={"image": ("big.jpg", data, "image/jpeg")}, data={"k": "3"}
    )
    assert response.status_code == 200, response.text
    assert isinstance(response.json()["matches"], list)


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming a huge image, with a tiny body (never decoded)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


def test_other_tenants_media_is_not_found(app, pets, other_tenant_key):
    collection, accepted = pets
    with app.client(other_tenant_key) as other:
        assert_error(
            other.get(f"/v1/media/{accepted['coffee']['media_id']}"), 404, "media_not_found"
        )
        found = other.post(
            "/v1/search",
            json={"phash": accepted["coffee"]["phash"], "collection": collection, "mode": "phash"},
        )
        assert found.json()["matches"] == []


def test_ingest_status_is_live_on_the_websocket_and_sse(app, client_module):
    from websockets.sync.client import connect

    accepted = ingest(client_module, jpeg(photo("clock")), "live")
    url = app.url.replace("http://", "ws://") + f"/v1/ws?api_key={app.admin_key}"
    seen = []
    with connect(url, open_timeout=20) as ws:
        ws.send(json.dumps({"action": "subscribe", "job_ids": [accepted["job_id"]]}))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            message = json.loads(ws.recv(timeout=30))
            if message["type"] != "event":
                continue
            event = message["event"]
            seen.append((event["type"], event["data"].get("status")))
            if event["type"] == "job.status" and event["data"]["status"] == "succeeded":
                break
    statuses = [status for kind, status in seen if kind == "job.status"]
    assert statuses[0] == "queued" and "running" in statuses and statuses[-1] == "succeeded"
    assert ("job.result", None) in seen
    sse = client_module.get(f"/v1/jobs/{accepted['job_id']}/events").text
    assert "event: job.result" in sse and '"matches"' in sse


def test_ingest_by_object_key_after_a_presigned_upload(client_module):
    import httpx

    data = jpeg(photo("coffee"))
    ticket = client_module.post(
        "/v1/uploads", json={"filename": "c.jpg", "content_type": "image/jpeg"}
    ).json()
    assert (
        httpx.put(
            ticket["upload_url"], content=data, headers={"content-type": "image/jpeg"}
        ).status_code
        == 200
    )
    accepted = client_module.post(
        "/v1/ingest", json={"object_key": ticket["object_key"], "collection": "uploaded"}
    )
    assert accepted.status_code == 202, accepted.text
    assert wait_for(client_module, accepted.json()["job_id"])["status"] == "succeeded"
    assert_error(
        client_module.post("/v1/ingest", json={"object_key": "someone-else/x.jpg"}),
        404,
        "object_not_found",
    )
    assert_error(
        client_module.post("/v1/ingest", json={"object_key": "../../etc/passwd"}),
        404,
        "object_not_found",
    )


def test_a_bad_image_in_an_embedder_batch_fails_alone(app):
    """Calls sent together are batched; corrupt bytes among them get their own error and the
    others their vectors."""
    import asyncio

    from ray import serve

    from busque.media.phash import phash_bytes

    good = jpeg(photo("chelsea"))

    async def together() -> tuple[list[dict], list[dict]]:
        handle = serve.get_deployment_handle("Embedder", app.settings.serve.app_name)
        data = [good if i % 2 else good[: len(good) // 3] for i in range(8)]
        mixed = await asyncio.gather(
            *(handle.embed.remote(item, i % 4 == 1) for i, item in enumerate(data))
        )
        return mixed, await asyncio.gather(*(handle.embed.remote(good, False) for _ in range(16)))

    results, warm = asyncio.run(together())
    for i, result in enumerate(results):
        if i % 2:
            assert len(result["vector"]) == 1280 and result["labels"]
            # the pHash only when asked for (a search query), the same as ingest's
            assert result.get("phash") == (phash_bytes(good) if i % 4 == 1 else None)
        else:
            assert result["error"]["status"] == 422
            assert result["error"]["code"] == "invalid_image"
    # calls prepared on the pool while a forward pass ran share the next one
    timings = [result["timing"] for result in warm]
    assert 1 < max(t["batch"] for t in timings) <= app.settings.embedder.batch_size
    assert all(t["prepare_ms"] > 0 and t["model_ms"] > 0 for t in timings)


def with_comment(data: bytes, note: str) -> bytes:
    """The JPEG with a comment segment: the same picture, bytes no other test ingests."""
    text = note.encode()
    return data[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + data[2:]


def test_delete_racing_an_ingest_of_the_same_bytes_keeps_the_original(app, client_module):
    """DELETE of the only media with some bytes at the moment the same bytes are ingested
    again: the original is content-addressed, so the new media must keep it, whichever request
    gets there first (the new media used to stay pending for ever, its original deleted)."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from busque.runtime import Runtime

    def delete(barrier: Barrier, media_id: str) -> int:
        with app.client() as c:
            barrier.wait()
            return c.delete(f"/v1/media/{media_id}").status_code

    def ingest_again(barrier: Barrier, data: bytes) -> dict:
        with app.client() as c:
            barrier.wait()
            return ingest(c, data, "delete-race")

    runtime = Runtime(app.settings)
    plain = jpeg(photo("rocket"), size=256)
    for round_ in range(15):
        data = with_comment(plain, f"delete race {round_} {time.time_ns()}")
        first = ingest(client_module, data, "delete-race")
        assert wait_for(client_module, first["job_id"], timeout=120)["status"] == "succeeded"
        barrier = Barrier(2)
        with ThreadPoolExecutor(2) as pool:
            deleted = pool.submit(delete, barrier, first["media_id"])
            again = pool.submit(ingest_again, barrier, data)
            assert deleted.result() == 204
            second = again.result()
        job = wait_for(client_module, second["job_id"], timeout=120)
        assert job["status"] == "succeeded", (round_, job)
        row = runtime.catalog.get(second["media_id"])
        assert row["state"] == "indexed"
        assert runtime.objects.get(row["original_key"]) == data


def test_delete_while_indexing_leaves_nothing_behind(app, client_module):
    """A media item deleted while its job runs: the job fails (media_not_found) or finished
    first; either way no rendition it wrote, nor its unshared original, stays stored."""
    rng = np.random.default_rng(12)
    stored = app.settings.storage.local_dir / "data"
    for delay in (0.0, 0.02, 0.05, 0.1, 0.2, 0.4):
        noise = rng.integers(0, 256, size=(1200, 1200, 3), dtype=np.uint8)
        accepted = ingest(client_module, jpeg(noise, size=None), "delete-while-indexing")
        time.sleep(delay)
        assert client_module.delete(f"/v1/media/{accepted['media_id']}").status_code == 204
        job = wait_for(client_module, accepted["job_id"], timeout=120)
        assert job["status"] in ("succeeded", "failed"), job
        assert list(stored.rglob(f"{accepted['media_id']}.*")) == [], (delay, job)
        assert list(stored.rglob(f"{accepted['sha256']}.*")) == [], (delay, job)


def test_copies_ingested_at_once_name_the_first_as_their_original(client_module):
    """Each accepted copy used to look for any other row with its bytes, so when they arrived
    together even the first one was reported a duplicate (of a later one)."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(time.time_ns() % 2**32)
    data = jpeg(rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8), size=None)
    with ThreadPoolExecutor(8) as pool:
        accepted = list(pool.map(lambda _: ingest(client_module, data, "copies"), range(8)))
    first = min(a["media_id"] for a in accepted)
    assert next(a for a in accepted if a["media_id"] == first)["duplicate_of"] is None
    for a in accepted:  # the jobs run once every copy is catalogued
        done = wait_for(client_module, a["job_id"])
        assert done["status"] == "succeeded"
        assert done["result"]["duplicate_of"] == (None if a["media_id"] == first else first)
