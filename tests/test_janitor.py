"""Deleting stored objects without depending on the store (busque.media.janitor): a store
outage (a real SeaweedFS behind a TCP proxy that the test cuts) neither keeps a deleted row nor
leaves an object for good; an original shared by other media is kept, decided under the lock
that inserts of the same bytes take; pending rows whose ingest job never existed go."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from busque.auth.keys import KeyStore
from busque.config import JobSettings
from busque.db.engine import make_engine
from busque.jobs.store import JobStore, NewJob
from busque.media.catalog import Catalog, media_keys
from busque.media.janitor import Janitor
from busque.storage import LocalObjectStore, S3ObjectStore
from busque.testing.tcp_proxy import TcpProxy
from tests.test_store import db_url  # noqa: F401 - SQLite and PostgreSQL

SHA = "c" * 64


@pytest.fixture
def world(db_url, tmp_path):  # noqa: F811
    engine = make_engine(db_url)
    catalog = Catalog(engine)
    tenant = KeyStore(engine).ensure_tenant("acme")
    objects = LocalObjectStore(tmp_path / "objects", "key", "http://api.test")
    yield engine, catalog, tenant, objects
    engine.dispose()


def add(catalog: Catalog, tenant: str, sha: str = SHA, job_id: str | None = None) -> dict:
    return catalog.create(
        tenant,
        "c",
        sha256=sha,
        phash=1,
        width=1,
        height=1,
        format="jpeg",
        size=1,
        metadata={},
        job_id=job_id,
    )


def store_files(objects, tenant: str, row: dict) -> dict[str, str]:
    keys = media_keys(tenant, row)
    for key in keys.values():
        objects.put(key, b"bytes")
    return keys


def test_an_original_is_deleted_with_the_last_media_that_has_its_bytes(world):
    engine, catalog, tenant, objects = world
    janitor = Janitor(engine, objects, catalog)
    first, second = add(catalog, tenant), add(catalog, tenant)
    keys_1, keys_2 = store_files(objects, tenant, first), store_files(objects, tenant, second)
    assert keys_1["original"] == keys_2["original"]  # content-addressed

    removed = catalog.delete(first["id"], tenant)
    assert janitor.sweep(removed["deletions"]) == 3
    assert objects.stat(keys_1["normalized"]) is None and objects.stat(keys_1["thumbnail"]) is None
    assert objects.stat(keys_1["original"]) is not None  # `second` still has these bytes

    removed = catalog.delete(second["id"], tenant)
    assert janitor.sweep(removed["deletions"]) == 3
    assert [objects.stat(k) for k in keys_2.values()] == [None] * 3
    assert janitor.pending() == 0


def test_deleting_an_original_holds_off_inserts_of_its_bytes(world):
    """The janitor decides whether the original is still shared, and deletes it, under the
    lock Catalog.create takes for the same bytes: an insert of them waits for that."""
    engine, catalog, tenant, objects = world
    only = add(catalog, tenant)
    keys = store_files(objects, tenant, only)
    order = []

    class SlowDelete(LocalObjectStore):
        def delete(self, key: str) -> None:
            if key == keys["original"]:
                inserting = pool.submit(add, catalog, tenant)
                time.sleep(0.3)  # ample for an insert that does not wait
                order.append(("original deleted", inserting.done()))
            super().delete(key)

    janitor = Janitor(engine, SlowDelete(objects.root, "key", "http://api.test"), catalog)
    with ThreadPoolExecutor(1) as pool:
        removed = catalog.delete(only["id"], tenant)
        janitor.sweep(removed["deletions"])
    assert order == [("original deleted", False)]  # the insert waited for the deletion
    assert len(catalog.list(tenant, states=("pending",))[0]) == 1  # and then went in


def test_a_store_outage_keeps_deletions_queued_until_it_is_back(world, seaweedfs_server):
    engine, catalog, tenant, _ = world
    host, port = seaweedfs_server["endpoint"].split(":")
    proxy = TcpProxy(host, int(port))
    objects = S3ObjectStore(
        proxy.address,
        seaweedfs_server["access_key"],
        seaweedfs_server["secret_key"],
        f"janitor-{uuid.uuid4().hex[:8]}",
    )
    janitor = Janitor(engine, objects, catalog)
    try:
        row = add(catalog, tenant, sha=uuid.uuid4().hex * 2)
        keys = store_files(objects, tenant, row)
        proxy.down()
        removed = catalog.delete(row["id"], tenant)  # the row goes: the store is not asked
        assert removed is not None and catalog.get(row["id"]) is None
        assert janitor.sweep(removed["deletions"]) == 0
        assert janitor.pending() == 3
        proxy.up()
        assert janitor.sweep() == 3
        assert janitor.pending() == 0
        assert [objects.stat(k) for k in keys.values()] == [None] * 3
    finally:
        proxy.close()


def test_a_pending_row_whose_job_never_came_to_exist_is_removed(world):
    engine, catalog, tenant, objects = world
    janitor = Janitor(engine, objects, catalog)
    job = NewJob(tenant_id=tenant, model="ingest", input={}, params={}, max_attempts=1, timeout_s=9)
    JobStore(engine, JobSettings(), []).create(job)
    with_job = add(catalog, tenant, sha="a" * 64, job_id=job.id)
    orphan = add(catalog, tenant, sha="b" * 64, job_id="job_never_created")
    keys = store_files(objects, tenant, orphan)
    assert janitor.remove_orphan_rows(older_than_s=60) == 0  # too young to tell
    time.sleep(0.05)
    assert janitor.remove_orphan_rows(older_than_s=0.01) == 1
    assert catalog.get(orphan["id"]) is None
    assert catalog.get(with_job["id"]) is not None
    assert [objects.stat(k) for k in keys.values()] == [None] * 3
