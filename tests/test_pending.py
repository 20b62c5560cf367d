"""The backfill's journals of objects written ahead of the catalog (pipelines/pending.py), on a
real object directory and real SQLite and PostgreSQL catalogs: what a dead run left
uncatalogued is removed, nothing catalogued is touched, and a live run's journal is left."""

from __future__ import annotations

import json
import time

import pytest

from busque.auth.keys import KeyStore
from busque.db.engine import make_engine
from busque.media.catalog import Catalog
from busque.storage import LocalObjectStore, tenant_key
from pipelines import pending
from tests.test_store import db_url  # noqa: F401 - the same per-test databases


@pytest.fixture
def world(db_url, tmp_path):  # noqa: F811
    engine = make_engine(db_url)
    tenant = KeyStore(engine).ensure_tenant("acme")
    objects = LocalObjectStore(tmp_path / "objects", "k" * 32, "http://localhost")
    yield Catalog(engine), objects, tenant
    engine.dispose()


def catalogued(catalog: Catalog, tenant: str, sha: str) -> str:
    return catalog.create(
        tenant, "pets", sha256=sha, phash=1, width=1, height=1, format="jpeg", size=1, metadata={}
    )["id"]


def put_all(objects, keys) -> None:
    for key in keys:
        objects.put(key, b"x")


def exists(objects, key: str) -> bool:
    return objects.stat(key) is not None


def test_a_dead_runs_uncatalogued_objects_are_removed_and_the_rest_kept(world):
    catalog, objects, tenant = world
    kept_id = catalogued(catalog, tenant, "a" * 64)
    kept = [tenant_key(tenant, "normalized", f"{kept_id}.jpg")]
    lost = [
        tenant_key(tenant, "normalized", "med_lost.jpg"),
        tenant_key(tenant, "thumbs", "x.webp"),
    ]
    put_all(objects, kept + lost)
    journal = pending.begin(objects, tenant, {kept_id: kept, "med_lost": lost})

    # younger than the grace period: perhaps a run still going, left alone
    assert pending.sweep(objects, catalog, tenant, older_than_s=3600) == 0
    assert all(exists(objects, key) for key in [*kept, *lost, journal])

    assert pending.sweep(objects, catalog, tenant, older_than_s=0) == 2
    assert all(exists(objects, key) for key in kept)
    assert not any(exists(objects, key) for key in [*lost, journal])
    assert pending.sweep(objects, catalog, tenant, older_than_s=0) == 0  # nothing left to do


def test_finish_forgets_a_journal_and_its_objects_stay(world):
    catalog, objects, tenant = world
    keys = [tenant_key(tenant, "faces", "face_1.jpg")]
    put_all(objects, keys)
    pending.finish(objects, [pending.begin(objects, tenant, {"med_1": keys})])
    assert pending.sweep(objects, catalog, tenant, older_than_s=0) == 0
    assert exists(objects, keys[0])


def test_a_journal_cannot_reach_outside_its_tenant_and_a_corrupt_one_is_dropped(world):
    catalog, objects, tenant = world
    other = tenant_key("ten_other", "normalized", "med_9.jpg")
    objects.put(other, b"theirs")
    forged = tenant_key(tenant, pending.PREFIX, "forged.json")
    objects.put(
        forged, json.dumps({"written_at": time.time() - 10, "media": {"m": [other]}}).encode()
    )
    corrupt = tenant_key(tenant, pending.PREFIX, "corrupt.json")
    objects.put(corrupt, b"{not json")
    assert pending.sweep(objects, catalog, tenant, older_than_s=0) == 0
    assert exists(objects, other)
    assert list(objects.list(tenant_key(tenant, pending.PREFIX) + "/")) == []
