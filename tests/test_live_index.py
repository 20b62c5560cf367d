"""What the Matcher serves (busque.index.live), on a real catalog and object store: replicas
converge through the change log, a restart serves everything ever indexed (snapshot + delta),
deletes are honoured, and a new snapshot is swapped in under queries without a failed one."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from busque.auth.keys import KeyStore
from busque.db.engine import make_engine
from busque.db.migrate import upgrade
from busque.index import snapshot
from busque.index.live import LiveIndex
from busque.media.catalog import Catalog
from busque.storage import LocalObjectStore

DIM = 8
KEYS = {"original": "o", "normalized": "n", "thumbnail": "t"}


@pytest.fixture
def world(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    objects = LocalObjectStore(tmp_path / "objects", "key", "http://x")
    tenant = KeyStore(engine).ensure_tenant("acme")
    yield Catalog(engine), objects, tenant
    engine.dispose()


def index_one(catalog: Catalog, tenant: str, seed: int, collection: str = "c") -> dict:
    rng = np.random.default_rng(seed)
    vector = rng.normal(size=DIM).astype(np.float32)
    row = catalog.create(
        tenant,
        collection,
        sha256=f"{seed:064x}",
        phash=int(rng.integers(-(2**62), 2**62)),
        width=1,
        height=1,
        format="jpeg",
        size=1,
        metadata={},
    )
    catalog.mark_indexed(
        row["id"],
        keys=KEYS,
        embedding=vector,
        embedding_model="m",
        embedding_version="1",
        labels=[],
    )
    return row | {"vector": vector}


def top(live: LiveIndex, tenant: str, row: dict) -> int:
    return live.search(tenant, "c", vector=row["vector"], k=1, mode="visual")[0]["media_id"]


def test_replicas_converge_and_a_restart_serves_everything(world):
    catalog, objects, tenant = world
    first = [index_one(catalog, tenant, s) for s in range(5)]
    a, b = LiveIndex(catalog, objects, DIM), LiveIndex(catalog, objects, DIM)
    assert len(a.scope(tenant, "c").index) == len(b.scope(tenant, "c").index) == 5
    later = index_one(catalog, tenant, 99)
    a.add(tenant, "c", later["index_id"], later["vector"], later["phash"], later["sha256"])
    assert top(a, tenant, later) == later["index_id"]  # at once on the replica that indexed it
    b.sync()
    assert top(b, tenant, later) == later["index_id"]  # through the change log on the other
    a.save(tenant, "c")
    catalog.delete(first[0]["id"], tenant)
    restarted = LiveIndex(catalog, objects, DIM)  # snapshot, then the delta after it
    scope = restarted.scope(tenant, "c")
    assert scope.version == snapshot.read_manifest(objects, tenant, "c")["version"]
    assert sorted(scope.index.ids()) == sorted(r["index_id"] for r in [*first[1:], later])


def test_other_tenants_and_collections_are_separate(world):
    catalog, objects, tenant = world
    mine = index_one(catalog, tenant, 1)
    index_one(catalog, tenant, 2, collection="other")
    live = LiveIndex(catalog, objects, DIM)
    assert live.scope(tenant, "c").index.ids() == [mine["index_id"]]
    assert live.scope("someone-else", "c").index.ids() == []


def test_a_new_snapshot_is_swapped_in_under_queries_without_a_failed_one(world):
    catalog, objects, tenant = world
    rows = [index_one(catalog, tenant, s) for s in range(50)]
    serving = LiveIndex(catalog, objects, DIM)
    serving.scope(tenant, "c")
    errors, answers, stop = [], [], threading.Event()

    def query_loop():
        while not stop.is_set():
            try:
                answers.append(top(serving, tenant, rows[7]))
            except Exception as exc:  # any failed query fails the test
                errors.append(exc)

    thread = threading.Thread(target=query_loop)
    thread.start()
    try:
        builder = LiveIndex(
            catalog, objects, DIM, index_options={"vector_options": {"kind": "flat"}}
        )
        version = builder.save(tenant, "c")  # a reindex publishes a new version
        serving.sync()
        assert serving.scope(tenant, "c").version == version
    finally:
        stop.set()
        thread.join()
    assert not errors and answers and set(answers) == {rows[7]["index_id"]}


def test_duplicate_pairs(world):
    catalog, objects, tenant = world
    a = index_one(catalog, tenant, 1)
    twin = catalog.create(
        tenant,
        "c",
        sha256="f" * 64,
        phash=a["phash"] ^ 0b101,
        width=1,
        height=1,
        format="jpeg",
        size=1,
        metadata={},
    )
    catalog.mark_indexed(
        twin["id"],
        keys=KEYS,
        embedding=a["vector"],
        embedding_model="m",
        embedding_version="1",
        labels=[],
    )
    b = index_one(catalog, tenant, 2)
    live = LiveIndex(catalog, objects, DIM)
    first, second = sorted([a["index_id"], twin["index_id"]])
    # pHash within 4 bits (2 apart) and the same embedding; the third is neither.
    assert live.duplicate_pairs(tenant, "c", 4, 0.99) == [(first, second, 2, 1.0, None, None)]
    assert live.duplicate_pairs(tenant, "c", 1, None) == []
    assert live.duplicate_pairs(tenant, "c", 1, 0.99) == [(first, second, None, 1.0, None, None)]
    assert all(b["index_id"] not in pair[:2] for pair in live.duplicate_pairs(tenant, "c", 4, 0.99))

    # A caller that has the answer before gets what changed since, not every pair again.
    had = live.duplicate_pairs_answer(tenant, "c", 4, 0.99, wait_s=None)
    assert (
        live.duplicate_pairs_answer(tenant, "c", 4, 0.99, known_version=had["version"])["pairs"]
        is None
    )
    third = index_one(catalog, tenant, 1)  # a copy of `a`: pairs with both
    live.sync()
    now = live.duplicate_pairs_answer(tenant, "c", 4, 0.99, known_version=had["version"])
    assert now["pairs"] is None and now["version"] != had["version"]
    changed = (set(had["pairs"]) - set(now["changes"]["removed"])) | set(now["changes"]["added"])
    assert sorted(changed) == live.duplicate_pairs(tenant, "c", 4, 0.99)
    assert {third["index_id"]} <= {i for row in now["changes"]["added"] for i in row[:2]}
    stranger = live.duplicate_pairs_answer(tenant, "c", 4, 0.99, known_version="other-1")
    assert stranger["pairs"] == live.duplicate_pairs(tenant, "c", 4, 0.99)


def test_index_settings_decide_what_the_matcher_calls_a_near_duplicate(tmp_path):
    """The Matcher's LiveIndex comes from the composition root (Runtime.live_index): its
    near-duplicate thresholds are `index.duplicate_radius`, `index.near_duplicate_cosine` and
    `index.near_duplicate_score`, so changing one changes the answer for the same query."""
    from busque.config import Settings
    from busque.runtime import Runtime

    rng = np.random.default_rng(7)
    stored = rng.normal(size=DIM).astype(np.float32)
    stored /= np.linalg.norm(stored)
    nudge = rng.normal(size=DIM).astype(np.float32)
    nudge -= nudge.dot(stored) * stored
    nudge /= np.linalg.norm(nudge)
    query = 0.85 * stored + np.sqrt(1 - 0.85**2) * nudge  # cosine 0.85 to the stored vector
    phash = 0x0F0F_0F0F_0F0F_0F0F
    query_phash = phash ^ 0b11111  # 5 bits away

    def answers(**index_settings) -> dict[str, bool]:
        home = tmp_path / "-".join(f"{k}{v}" for k, v in index_settings.items())
        runtime = Runtime(Settings(home=home, index=index_settings))
        runtime.migrate()
        tenant = runtime.keys.ensure_tenant("acme")
        live = runtime.live_index(DIM)
        live.add(tenant, "c", 1, stored, phash, "a" * 64)
        found = {
            mode: live.search(tenant, "c", vector=query, phash=query_phash, k=1, mode=mode)
            for mode in ("phash", "visual", "hybrid")
        }
        assert all(len(matches) == 1 for matches in found.values())
        return {mode: matches[0]["near_duplicate"] for mode, matches in found.items()}

    default = answers()
    assert default == {"phash": True, "visual": True, "hybrid": True}
    assert answers(duplicate_radius=4)["phash"] is False
    assert answers(near_duplicate_cosine=0.9)["visual"] is False
    assert answers(near_duplicate_score=0.99)["hybrid"] is False
    assert answers(duplicate_radius=4, near_duplicate_cosine=0.9)["hybrid"] is True


def test_a_matcher_deployment_answers_by_its_index_settings(app):
    """Through the service: a photo ingested over HTTP, searched by a pHash 5 bits away, is a
    near duplicate for the app's Matcher (duplicate_radius 8) and not for a second Matcher
    deployment bound with duplicate_radius 4 (same catalog, same Embedder)."""
    import asyncio
    import io

    import skimage.data
    from PIL import Image
    from ray import serve

    from busque.media.phash import hex_to_int64
    from busque.serve.matcher import Matcher
    from tests.conftest import wait_for

    image = Image.fromarray(skimage.data.chelsea()).convert("RGB")
    data = io.BytesIO()
    image.save(data, "JPEG", quality=90)
    collection = "matcher-settings"
    with app.client() as client:
        accepted = client.post(
            "/v1/ingest",
            files={"image": ("c.jpg", data.getvalue(), "image/jpeg")},
            data={"collection": collection},
        ).json()
        assert wait_for(client, accepted["job_id"], timeout=120)["status"] == "succeeded"
        tenant = client.get("/v1/me").json()["tenant_id"]
        query = f"{int(accepted['phash'], 16) ^ 0b11111:016x}"  # 5 bits away
        found = client.post(
            "/v1/search", json={"phash": query, "collection": collection, "mode": "phash"}
        ).json()["matches"]
    assert found[0]["media_id"] == accepted["media_id"] and found[0]["near_duplicate"] is True

    strict = app.settings.model_dump(mode="json")
    strict["index"]["duplicate_radius"] = 4
    embedder = serve.get_deployment_handle("Embedder", app_name=app.settings.serve.app_name)
    handle = serve.run(
        Matcher.options(name="StrictMatcher", ray_actor_options={"num_cpus": 0.1}).bind(
            strict, embedder
        ),
        name="strict-matcher",
        route_prefix=None,
    )

    async def strict_search() -> list[dict]:  # Serve's handles want an event loop here
        return await handle.search.remote(
            tenant, collection, phash=hex_to_int64(query), k=1, mode="phash"
        )

    try:
        hits = asyncio.run(strict_search())
    finally:
        serve.delete("strict-matcher")
    assert hits and hits[0]["phash_distance"] == 5
    assert hits[0]["near_duplicate"] is False
