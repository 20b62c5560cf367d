"""Reindex: a collection's index rebuilt (from stored embeddings, or recomputed by a Ray Data
actor pool) into a new snapshot that the serving Matcher swaps in while searches keep running,
with zero failed queries. Through the real app, as a job and as the pipeline function."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from sqlalchemy import select, update

from busque.db.schema import media as media_rows
from busque.index import snapshot
from busque.media.phash import phash_and_variants
from busque.runtime import Runtime
from tests.conftest import wait_for
from tests.face_photos import encode

COLLECTION = "reindex-live"
NAMES = ("chelsea", "coffee", "rocket", "camera", "moon", "horse")


def load(name: str):
    import skimage.data
    from PIL import Image

    array = getattr(skimage.data, name)()
    return Image.fromarray(array).convert("RGB")


def test_reindex_job_swaps_the_index_under_live_searches(app, client):
    originals = {name: encode(load(name), quality=90) for name in NAMES}
    jobs = []
    for name, data in originals.items():
        response = client.post(
            "/v1/ingest",
            files={"image": (f"{name}.jpg", data, "image/jpeg")},
            data={"collection": COLLECTION},
        )
        assert response.status_code == 202, response.text
        jobs.append(response.json())
    ids = {}
    for name, media in zip(NAMES, jobs, strict=True):
        assert wait_for(client, media["job_id"], 120)["status"] == "succeeded"
        ids[media["media_id"]] = name

    # A row catalogued before busque kept each photo's turns' pHashes (migration 0013) has
    # none: a recompute fills them in, as ingest computes them.
    runtime = Runtime(app.settings)
    old = next(iter(ids))
    with runtime.engine.begin() as conn:
        conn.execute(update(media_rows).where(media_rows.c.id == old).values(phash_variants=None))

    stop, outcomes = threading.Event(), []

    def search_loop():
        with app.client() as own:
            while not stop.is_set():
                for name, data in originals.items():
                    response = own.post(
                        "/v1/search",
                        files={"image": ("q.jpg", data, "image/jpeg")},
                        data={"collection": COLLECTION, "k": "3"},
                    )
                    top = response.json()["matches"][0]["media_id"] if response.is_success else None
                    outcomes.append((response.status_code, ids.get(top) == name))

    searcher = threading.Thread(target=search_loop, daemon=True)
    searcher.start()
    try:
        created = client.post(
            "/v1/jobs",
            json={"model": "reindex", "input": {"collection": COLLECTION, "recompute": True}},
        )
        assert created.status_code == 202, created.text
        job = wait_for(client, created.json()["id"], 300)
        assert job["status"] == "succeeded", job
        time.sleep(2)  # the Matcher's sync picks the new snapshot up; searches go on meanwhile
    finally:
        stop.set()
        searcher.join(30)
    result = job["result"]
    assert result["count"] == len(NAMES) and result["recomputed"] is True
    with runtime.engine.connect() as conn:
        filled = conn.scalar(select(media_rows.c.phash_variants).where(media_rows.c.id == old))
    assert filled == phash_and_variants(originals[ids[old]])[1]
    tenant = job_tenant(client)
    manifest = snapshot.read_manifest(runtime.objects, tenant, COLLECTION)
    assert manifest["version"] == result["version"]
    assert outcomes and all(status == 200 for status, _ in outcomes), outcomes[:5]
    assert all(correct for _, correct in outcomes)  # the right top match throughout
    events = client.get(f"/v1/jobs/{job['id']}/events", params={"after": 0}, timeout=30)
    assert "index built" in events.text


def job_tenant(client: httpx.Client) -> str:
    return client.get("/v1/me").json()["tenant_id"]


def test_reindex_from_stored_embeddings_and_a_new_version_each_time(app, client):
    from pipelines.reindex import reindex

    tenant = job_tenant(client)
    first = reindex(Runtime(app.settings), tenant, COLLECTION)
    second = reindex(Runtime(app.settings), tenant, COLLECTION)
    assert first["count"] == second["count"] == len(NAMES)
    assert second["version"] > first["version"] and not second["recomputed"]


def test_reindex_input_is_checked(client):
    for inputs in (
        {"collection": "../x"},
        {"collection": ".."},
        {"collection": "pets", "recompute": "yes"},  # not a bool
        {"collection": "pets", "recomptue": True},  # misspelt: not silently the default
    ):
        bad = client.post("/v1/jobs", json={"model": "reindex", "input": inputs})
        assert bad.status_code == 422, (inputs, bad.text)
        assert bad.json()["error"]["code"] == "invalid_input"


def test_reindex_refuses_a_bad_collection_name(app):
    from pipelines.reindex import reindex

    for name in ("../x", "..", "a/b", ""):
        with pytest.raises(ValueError, match="invalid collection name"):
            reindex(Runtime(app.settings), "ten_000000000000", name)


def test_reindex_of_a_collection_that_does_not_exist_is_an_error(app, client):
    """A typo is not an empty snapshot: the job fails with collection_not_found, naming the
    tenant's collections, and so does a direct call."""
    from busque.models.base import ModelError
    from pipelines.reindex import reindex

    job = client.post("/v1/jobs", json={"model": "reindex", "input": {"collection": "no-such"}})
    assert job.status_code == 202, job.text
    failed = wait_for(client, job.json()["id"], 60)
    assert failed["status"] == "failed" and failed["error"]["code"] == "collection_not_found"
    assert "no collection 'no-such'" in failed["error"]["message"]
    tenant = client.get("/v1/me").json()["tenant_id"]
    with pytest.raises(ModelError, match="no collection 'never-made'"):
        reindex(Runtime(app.settings), tenant, "never-made")
