"""The job store, API keys and the event tail against real databases: SQLite and PostgreSQL.

Every test runs on both: SQLite in a fresh file, PostgreSQL in a fresh database on the session's
server. Each database is built by the Alembic migrations, so they are tested on both too.
No Ray here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, func, insert, inspect, select, text, update
from sqlalchemy.engine import make_url

from busque.api.errors import ApiError
from busque.api.rate_limit import RateLimiter
from busque.auth.keys import KeyStore, parse_key
from busque.auth.rate_buckets import RateBuckets
from busque.config import JobSettings, QuotaSettings
from busque.db.engine import is_postgres, make_engine
from busque.db.migrate import current_revision, head_revision, upgrade
from busque.db.schema import api_keys, job_events, jobs, webhook_deliveries
from busque.jobs.event_tail import EventTail
from busque.jobs.events import Progress
from busque.jobs.outbox import WebhookOutbox
from busque.jobs.store import IdempotencyConflict, JobStore, NewJob, encode_cursor

TABLES = {
    "tenants",
    "api_keys",
    "jobs",
    "job_events",
    "artifacts",
    "webhook_deliveries",
    "media",
    "media_changes",
}
SETTINGS = JobSettings(lease_s=30, retry_backoff_s=10, retry_backoff_max_s=20)
DEFAULT_EVENTS = ["job.status", "job.result"]


# ---- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    """A fresh, migrated database: a SQLite file, or a new database on the PostgreSQL server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'busque.db'}"
        upgrade(url)
        yield url
        return
    server = request.getfixturevalue("postgres_url")
    name = f"test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = make_url(server).set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        yield url
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@pytest.fixture
def engines(db_url):
    """make_engine(db_url) for as many engines as a test wants; all disposed afterwards."""
    made = []

    def make():
        engine = make_engine(db_url, pool_size=4)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.dispose()


@pytest.fixture
def engine(engines):
    return engines()


@pytest.fixture
def store(engine):
    return JobStore(engine, SETTINGS, DEFAULT_EVENTS)


@pytest.fixture
def outbox(engine):
    return WebhookOutbox(engine)


@pytest.fixture
def keys(engine):
    return KeyStore(engine)


@pytest.fixture
def tenant(keys):
    return keys.ensure_tenant("acme")


def new_job(tenant_id: str, **overrides) -> NewJob:
    values = {
        "tenant_id": tenant_id,
        "model": "echo",
        "input": {"text": "hello"},
        "params": {},
        "max_attempts": 3,
        "timeout_s": 60.0,
    } | overrides
    return NewJob(**values)


def set_job(engine, job_id: str, **values) -> None:
    with engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))


def expire_lease(engine, job_id: str) -> None:
    set_job(engine, job_id, lease_expires_at=time.time() - 1)


def make_due(engine, job_id: str) -> None:
    set_job(engine, job_id, run_after=time.time() - 1)


def types(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


def statuses(events: list[dict]) -> list[str]:
    return [e["data"]["status"] for e in events if e["type"] == "job.status"]


def claim_one(store: JobStore, job_id: str, owner: str = "d1") -> dict:
    claimed = store.claim(owner, 10)
    assert [j["id"] for j in claimed] == [job_id]
    return claimed[0]


def run_threads(n: int, target) -> list:
    """Run target(i) in n threads that start together; returns the results (re-raises errors)."""
    barrier = threading.Barrier(n)
    results: list = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = target(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "threads did not finish"
    if errors:
        raise errors[0]
    return results


# ---- migrations --------------------------------------------------------------------------------


def test_migrations_are_idempotent_and_create_the_schema(db_url, engine):
    assert current_revision(db_url) == head_revision() == "0015"
    upgrade(db_url)  # a second upgrade is a no-op
    upgrade(db_url)
    assert current_revision(db_url) == head_revision()
    names = set(inspect(engine).get_table_names())
    assert names >= TABLES | {"alembic_version"}
    job_columns = {c["name"] for c in inspect(engine).get_columns("jobs")}
    assert {"lease_owner", "lease_expires_at", "attempt", "cancel_requested"} <= job_columns
    unique = inspect(engine).get_unique_constraints("jobs")
    assert any(set(u["column_names"]) == {"tenant_id", "idempotency_key"} for u in unique)
    if not is_postgres(engine):
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


# ---- creating jobs -----------------------------------------------------------------------------


def test_create_is_queued_with_a_status_event(store, tenant):
    job, created = store.create(new_job(tenant, priority=3))
    assert created
    assert job["state"] == "queued" and job["attempt"] == 0 and job["progress"] == 0
    stored = store.get(job["id"])
    assert stored["state"] == "queued"
    assert stored["priority"] == 3
    assert stored["input"] == {"text": "hello"}
    assert store.get(job["id"], tenant_id=tenant)["id"] == job["id"]
    assert store.get(job["id"], tenant_id="ten_other") is None
    assert store.get("job_missing") is None
    events = store.events(job_id=job["id"])
    assert [(e["type"], e["data"], e["attempt"]) for e in events] == [
        ("job.status", {"status": "queued"}, 0)
    ]
    assert events[0]["tenant_id"] == tenant


def test_idempotency_key_returns_the_first_job(store, tenant):
    first, created = store.create(new_job(tenant, idempotency_key="k1"))
    again, created_again = store.create(new_job(tenant, idempotency_key="k1"))
    assert created and not created_again
    assert again["id"] == first["id"]
    # The same key in another tenant is another job.
    other_tenant = KeyStore(store.engine).ensure_tenant("other")
    other, created_other = store.create(new_job(other_tenant, idempotency_key="k1"))
    assert created_other and other["id"] != first["id"]
    assert len(store.events(job_id=first["id"])) == 1  # the replay emitted nothing


def test_idempotency_key_with_a_different_request_conflicts(store, tenant):
    store.create(new_job(tenant, idempotency_key="k1"))
    with pytest.raises(IdempotencyConflict):
        store.create(new_job(tenant, idempotency_key="k1", input={"text": "other"}))
    with pytest.raises(IdempotencyConflict):
        store.create(new_job(tenant, idempotency_key="k1", priority=9))
    assert store.counts_by_state()["queued"] == 1


def test_concurrent_creates_with_one_key_make_one_job(engines, tenant):
    stores = [JobStore(engines(), SETTINGS, DEFAULT_EVENTS) for _ in range(8)]
    results = run_threads(8, lambda i: stores[i].create(new_job(tenant, idempotency_key="same")))
    assert len({job["id"] for job, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    with stores[0].engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(jobs)).scalar() == 1
        assert conn.execute(select(func.count()).select_from(job_events)).scalar() == 1


# ---- claiming ----------------------------------------------------------------------------------


def test_claim_is_atomic_across_engines(engines, store, tenant):
    ids = {store.create(new_job(tenant))[0]["id"] for _ in range(200)}
    # Four dispatchers, as separate processes would be: each with its own engine and pool.
    stores = [JobStore(engines(), SETTINGS, DEFAULT_EVENTS) for _ in range(4)]

    def drain(i: int) -> list[dict]:
        got = []
        while True:
            batch = stores[i].claim(f"owner-{i}", 7)
            assert len(batch) <= 7
            if not batch:
                return got
            got.extend(batch)

    results = run_threads(4, drain)
    claimed = [job["id"] for batch in results for job in batch]
    assert len(claimed) == len(set(claimed)) == 200
    assert set(claimed) == ids
    for i, batch in enumerate(results):
        assert all(j["lease_owner"] == f"owner-{i}" and j["attempt"] == 1 for j in batch)
    with store.engine.connect() as conn:
        rows = conn.execute(select(jobs.c.id, jobs.c.state, jobs.c.attempt, jobs.c.lease_owner))
        owners = {}
        for row in rows:
            assert row.state == "running" and row.attempt == 1
            owners[row.id] = row.lease_owner
    for i, batch in enumerate(results):
        assert all(owners[j["id"]] == f"owner-{i}" for j in batch)
    # Exactly one "running" event per job.
    running = [e for e in store.events(limit=10_000) if e["data"].get("status") == "running"]
    assert len(running) == 200 and {e["job_id"] for e in running} == ids
    assert store.counts_by_state() == {
        "queued": 0,
        "running": 200,
        "succeeded": 0,
        "failed": 0,
        "canceled": 0,
    }


def test_claim_takes_higher_priority_first_then_creation_order(store, tenant):
    created = []
    for priority in (0, 5, 0, 5, 1):
        created.append(store.create(new_job(tenant, priority=priority))[0]["id"])
        time.sleep(0.003)  # ids order creation to the millisecond
    low1, high1, low2, high2, mid = created
    expected = [high1, high2, mid, low1, low2]
    assert [store.claim("d1", 1)[0]["id"] for _ in range(2)] == expected[:2]
    batch = store.claim("d1", 10)
    assert [j["id"] for j in batch] == expected[2:]
    assert store.claim("d1", 10) == []


def test_tenants_share_the_workers_whatever_their_backlog_or_priority(store, keys, engine):
    """90 jobs of tenant A (30 at priority 100 that came last), then 1 of B: B's job is in the
    next claim, not after all of A's. A's own jobs still go by priority."""
    a, b = keys.ensure_tenant("noisy"), keys.ensure_tenant("quiet")
    for i in range(90):
        store.create(new_job(a, priority=100 if i >= 60 else 0))
    late = store.create(new_job(b))[0]["id"]
    first = store.claim("d1", 4)
    assert late in [j["id"] for j in first]
    assert [j["priority"] for j in first if j["tenant_id"] == a] == [100, 100, 100]
    # With A running 3 and B none, every free slot goes to B while it has jobs waiting.
    extra = [store.create(new_job(b))[0]["id"] for _ in range(2)]
    assert {j["id"] for j in store.claim("d1", 2)} == set(extra)


def test_tenant_weights_share_the_workers_in_proportion(engine, keys):
    settings = SETTINGS.model_copy(update={"tenant_weights": {"big": 3.0}})
    store = JobStore(engine, settings, DEFAULT_EVENTS)
    big, small = keys.ensure_tenant("big"), keys.ensure_tenant("small")
    for _ in range(20):
        store.create(new_job(small))
        store.create(new_job(big))
    claimed = store.claim("d1", 8)
    assert [j["tenant_id"] for j in claimed].count(big) == 6  # 3 to 1 while both wait


def test_claim_limit_and_run_after(store, engine, tenant):
    later = store.create(new_job(tenant))[0]["id"]
    set_job(engine, later, run_after=time.time() + 60)
    now_ids = [store.create(new_job(tenant))[0]["id"] for _ in range(3)]
    first = store.claim("d1", 2)
    assert len(first) == 2
    rest = store.claim("d1", 10)
    assert len(rest) == 1
    assert {j["id"] for j in first + rest} == set(now_ids)
    assert store.claim("d1", 10) == []  # the future job is not due
    assert store.get(later)["state"] == "queued"
    make_due(engine, later)
    job = claim_one(store, later)
    assert job["state"] == "running" and job["lease_owner"] == "d1"
    assert job["lease_expires_at"] == pytest.approx(time.time() + SETTINGS.lease_s, abs=5)
    assert job["started_at"] is not None


# ---- fencing -----------------------------------------------------------------------------------


def test_a_stale_attempt_cannot_write(store, engine, tenant):
    job_id = store.create(new_job(tenant))[0]["id"]
    first = claim_one(store, job_id, "d1")
    assert first["attempt"] == 1
    assert store.progress(job_id, 1, 10, "warming up")
    expire_lease(engine, job_id)
    assert store.reap_expired() == [(job_id, "queued")]
    assert store.get(job_id)["state"] == "queued"
    make_due(engine, job_id)
    second = claim_one(store, job_id, "d2")
    assert second["attempt"] == 2 and second["lease_owner"] == "d2"
    started = second["started_at"]
    assert started == first["started_at"]  # started_at is when the job first started

    before = store.get(job_id)
    events_before = store.events(job_id=job_id)
    assert store.progress(job_id, 1, 90, "stale") is False
    assert store.output(job_id, 1, ["stale chunk"], 0) is False
    assert store.add_artifact(job_id, 1, {"name": "a", "object_key": "k", "size": 1}) is False
    assert store.succeed(job_id, 1, {"stale": True}) is False
    assert store.fail_attempt(job_id, 1, "boom", "stale failure", retryable=False) is None
    assert store.cancel_attempt(job_id, 1) is False
    after = store.get(job_id)
    assert after == before
    assert store.events(job_id=job_id) == events_before
    assert store.artifacts(job_id) == []

    assert store.progress(job_id, 2, 50, None)
    assert store.succeed(job_id, 2, {"ok": True})
    assert store.succeed(job_id, 2, {"ok": "twice"}) is False  # terminal: nothing more lands
    assert store.progress(job_id, 2, 10, None) is False
    done = store.get(job_id)
    assert done["state"] == "succeeded" and done["result"] == {"ok": True}
    events = store.events(job_id=job_id)
    assert types(events).count("job.result") == 1
    assert statuses(events) == ["queued", "running", "queued", "running", "succeeded"]
    progress = [e["data"]["progress"] for e in events if e["type"] == "job.progress"]
    assert progress == [10, 50]


# ---- reaping expired leases --------------------------------------------------------------------


def test_reap_requeues_an_expired_attempt_with_backoff(store, engine, tenant):
    job_id = store.create(new_job(tenant, max_attempts=3))[0]["id"]
    other = store.create(new_job(tenant))[0]["id"]
    store.claim("d1", 10)
    expire_lease(engine, job_id)
    before = time.time()
    assert store.reap_expired() == [(job_id, "queued")]
    job = store.get(job_id)
    assert job["state"] == "queued"
    assert job["error_code"] == "timeout"
    assert job["lease_owner"] is None and job["lease_expires_at"] is None
    assert job["run_after"] >= before + SETTINGS.retry_backoff_s / 2 - 0.01
    assert job["run_after"] <= time.time() + SETTINGS.retry_backoff_max_s
    assert store.get(other)["state"] == "running"  # its lease is still good
    assert store.claim("d1", 10) == []  # backing off
    last = store.events(job_id=job_id)[-1]
    assert last["data"]["status"] == "queued" and last["data"]["error"]["code"] == "timeout"
    assert store.reap_expired() == []


def test_reap_fails_the_last_attempt(store, engine, tenant):
    job_id = store.create(new_job(tenant, max_attempts=1))[0]["id"]
    claim_one(store, job_id)
    expire_lease(engine, job_id)
    assert store.reap_expired() == [(job_id, "failed")]
    job = store.get(job_id)
    assert job["state"] == "failed" and job["error_code"] == "timeout"
    assert "attempt 1 of 1" in job["error_message"]
    assert job["finished_at"] is not None and job["lease_owner"] is None
    last = store.events(job_id=job_id)[-1]
    assert last["data"] == {"status": "failed", "error": {"code": "timeout", "message": ANY_STR}}


def test_reap_cancels_an_expired_job_asked_to_cancel(store, engine, tenant):
    job_id = store.create(new_job(tenant, max_attempts=3))[0]["id"]
    claim_one(store, job_id)
    assert store.request_cancel(job_id, tenant)["cancel_requested"] is True
    expire_lease(engine, job_id)
    assert store.reap_expired() == [(job_id, "canceled")]
    job = store.get(job_id)
    assert job["state"] == "canceled" and job["error_code"] == "canceled"
    assert statuses(store.events(job_id=job_id))[-1] == "canceled"


# ---- heartbeats --------------------------------------------------------------------------------


def test_heartbeat_extends_only_the_owners_running_leases(store, engine, tenant):
    mine = store.create(new_job(tenant))[0]["id"]
    theirs = store.create(new_job(tenant))[0]["id"]
    finished = store.create(new_job(tenant))[0]["id"]
    store.claim("d1", 10)
    set_job(engine, theirs, lease_owner="d2")
    assert store.succeed(finished, 1, "done")
    old = time.time() + 1
    for job_id in (mine, theirs):
        set_job(engine, job_id, lease_expires_at=old)

    assert store.heartbeat("d1", {mine: 1, theirs: 1, finished: 1}) == set()
    assert store.get(mine)["lease_expires_at"] > old + SETTINGS.lease_s - 5
    assert store.get(theirs)["lease_expires_at"] == old
    assert store.get(finished)["lease_expires_at"] is None
    assert store.heartbeat("d1", {}) == set()

    store.request_cancel(mine, tenant)
    assert store.heartbeat("d1", {mine: 1}) == {mine}
    assert store.heartbeat("d1", {mine: 2}) == set()  # another attempt: not this one's cancel
    assert store.get(mine)["state"] == "running"  # the flag only: the dispatcher cancels
    assert store.cancel_attempt(mine, 1)
    assert store.get(mine)["state"] == "canceled"


# ---- finishing attempts ------------------------------------------------------------------------


def test_fail_attempt_retryable_requeues_with_backoff(store, tenant):
    job_id = store.create(new_job(tenant, max_attempts=2))[0]["id"]
    claim_one(store, job_id)
    before = time.time()
    assert store.fail_attempt(job_id, 1, "worker_died", "replica crashed", True) == "queued"
    job = store.get(job_id)
    assert job["state"] == "queued" and job["attempt"] == 1
    assert job["error_code"] == "worker_died" and job["error_message"] == "replica crashed"
    assert job["run_after"] >= before + SETTINGS.retry_backoff_s / 2 - 0.01
    assert job["lease_owner"] is None and job["finished_at"] is None
    data = store.events(job_id=job_id)[-1]["data"]
    assert data["status"] == "queued" and data["retry_in_s"] >= SETTINGS.retry_backoff_s / 2
    assert data["error"] == {"code": "worker_died", "message": "replica crashed"}


def test_fail_attempt_not_retryable_or_out_of_attempts_fails(store, engine, tenant):
    hard = store.create(new_job(tenant, max_attempts=3))[0]["id"]
    last = store.create(new_job(tenant, max_attempts=1))[0]["id"]
    store.claim("d1", 10)
    assert store.fail_attempt(hard, 1, "bad_input", "not an image", False) == "failed"
    assert store.fail_attempt(last, 1, "worker_died", "again", True) == "failed"
    job = store.get(hard)
    assert job["state"] == "failed"
    assert (job["error_code"], job["error_message"]) == ("bad_input", "not an image")
    assert job["finished_at"] is not None and job["lease_owner"] is None
    assert store.events(job_id=hard)[-1]["data"] == {
        "status": "failed",
        "error": {"code": "bad_input", "message": "not an image"},
    }
    assert store.get(last)["state"] == "failed"
    assert store.fail_attempt(hard, 1, "x", "y", True) is None  # already finished


def test_fail_attempt_of_a_job_asked_to_cancel_cancels_it(store, tenant):
    job_id = store.create(new_job(tenant))[0]["id"]
    claim_one(store, job_id)
    store.request_cancel(job_id, tenant)
    assert store.fail_attempt(job_id, 1, "worker_died", "x", True) == "canceled"
    assert store.get(job_id)["state"] == "canceled"


def test_succeed_records_the_result(store, tenant):
    job_id = store.create(new_job(tenant))[0]["id"]
    claim_one(store, job_id)
    assert store.progress(job_id, 1, 150, "over") is True  # clamped
    assert store.get(job_id)["progress"] == 100
    assert store.progress(job_id, 1, -5, None) is True
    assert store.get(job_id)["progress"] == 0
    assert store.output(job_id, 1, ["a", "b"], 4)
    result = {"labels": ["cat"], "score": 0.9}
    assert store.succeed(job_id, 1, result)
    job = store.get(job_id)
    assert job["state"] == "succeeded" and job["progress"] == 100 and job["result"] == result
    assert job["finished_at"] >= job["started_at"] and job["lease_owner"] is None
    assert job["error_code"] is None
    events = store.events(job_id=job_id)
    assert types(events)[-2:] == ["job.result", "job.status"]
    assert events[-2]["data"] == {"result": result}
    assert events[-1]["data"] == {"status": "succeeded"}
    assert all(e["attempt"] == 1 for e in events[1:])
    outputs = [e["data"] for e in events if e["type"] == "job.output"]
    assert outputs == [{"chunk": "a", "index": 4}, {"chunk": "b", "index": 5}]
    assert store.durations(0) == [pytest.approx(job["finished_at"] - job["started_at"])]


def test_artifacts_are_fenced_and_replaced_by_name(store, tenant):
    job_id = store.create(new_job(tenant))[0]["id"]
    claim_one(store, job_id)
    assert store.add_artifact(job_id, 1, {"name": "out.png", "object_key": "k1", "size": 3})
    info = {"name": "out.png", "object_key": "k2", "size": 5, "content_type": "image/png"}
    assert store.add_artifact(job_id, 1, info)
    assert store.add_artifact(job_id, 1, {"name": "a.txt", "object_key": "k3", "size": 1})
    found = store.artifacts(job_id)
    assert [(a["name"], a["object_key"], a["size"]) for a in found] == [
        ("a.txt", "k3", 1),
        ("out.png", "k2", 5),
    ]
    assert all(a["tenant_id"] == tenant for a in found)


# ---- canceling and releasing -------------------------------------------------------------------


def test_request_cancel(store, tenant):
    queued = store.create(new_job(tenant))[0]["id"]
    job = store.request_cancel(queued, tenant)
    assert job["state"] == "canceled" and job["finished_at"] is not None
    assert statuses(store.events(job_id=queued)) == ["queued", "canceled"]
    assert store.claim("d1", 10) == []

    running = store.create(new_job(tenant))[0]["id"]
    claim_one(store, running)
    job = store.request_cancel(running, tenant)
    assert job["state"] == "running" and job["cancel_requested"] is True
    assert statuses(store.events(job_id=running)) == ["queued", "running"]

    # Another tenant cannot cancel it, and canceling a finished job changes nothing.
    assert store.request_cancel(running, "ten_other") is None
    assert store.request_cancel(queued, tenant)["state"] == "canceled"
    assert len(store.events(job_id=queued)) == 2


def test_release_gives_running_jobs_back(store, tenant):
    ids = [store.create(new_job(tenant))[0]["id"] for _ in range(3)]
    store.claim("d1", 2)
    store.claim("d2", 10)
    mine = [j for j in ids if store.get(j)["lease_owner"] == "d1"]
    assert len(mine) == 2
    assert store.release("d1") == 2
    for job_id in mine:
        job = store.get(job_id)
        assert job["state"] == "queued" and job["lease_owner"] is None
        assert store.events(job_id=job_id)[-1]["data"] == {"status": "queued", "released": True}
    assert store.release("d1") == 0
    assert store.counts_by_state()["running"] == 1  # d2's job is untouched
    again = store.claim("d3", 10)  # released jobs are due at once
    assert sorted(j["id"] for j in again) == sorted(mine)


# ---- listing -----------------------------------------------------------------------------------


def test_list_is_per_tenant_with_filters(store, keys, tenant):
    other = keys.ensure_tenant("other")
    a = store.create(new_job(tenant, model="echo"))[0]["id"]
    b = store.create(new_job(tenant, model="caption"))[0]["id"]
    c = store.create(new_job(tenant, model="echo"))[0]["id"]
    store.create(new_job(other, model="echo"))
    store.request_cancel(c, tenant)

    def ids(**kwargs):
        rows, cursor = store.list(tenant, **kwargs)
        assert cursor is None
        return {r["id"] for r in rows}

    assert ids() == {a, b, c}
    assert ids(states=["queued"]) == {a, b}
    assert ids(states=["queued", "canceled"]) == {a, b, c}
    assert ids(model="echo") == {a, c}
    assert ids(model="echo", states=["queued"]) == {a}
    assert ids(model="nope") == set()
    assert all(r["tenant_id"] == other for r in store.list(other)[0])
    assert len(store.list(other)[0]) == 1


def test_list_pages_newest_first_with_a_cursor(store, tenant):
    created = []
    for _ in range(25):
        created.append(store.create(new_job(tenant))[0]["id"])
        time.sleep(0.002)  # ids order creation to the millisecond
    pages, cursor = [], None
    while True:
        rows, cursor = store.list(tenant, limit=10, cursor=cursor)
        pages.append([r["id"] for r in rows])
        if cursor is None:
            break
    assert [len(p) for p in pages] == [10, 10, 5]
    seen = [i for page in pages for i in page]
    assert seen == list(reversed(created))
    assert len(set(seen)) == 25
    rows, cursor = store.list(tenant, limit=5, cursor=encode_cursor(created[5]))
    assert [r["id"] for r in rows] == list(reversed(created[:5])) and cursor is None
    for bad in ("not-a-cursor!", encode_cursor("ten_x"), "////"):
        with pytest.raises(ValueError):
            store.list(tenant, cursor=bad)


# ---- webhook outbox ----------------------------------------------------------------------------


def test_webhook_outbox_has_a_delivery_per_subscribed_event(store, outbox, tenant):
    hook = {"url": "https://example.com/hook", "events": ["job.status"]}
    job_id = store.create(new_job(tenant, webhook=hook))[0]["id"]
    plain = store.create(new_job(tenant))[0]["id"]
    store.claim("d1", 10)
    store.progress(job_id, 1, 50, None)
    store.succeed(job_id, 1, {"x": 1})
    store.succeed(plain, 1, {"x": 1})
    events = store.events(job_id=job_id)
    status_ids = [e["id"] for e in events if e["type"] == "job.status"]
    deliveries = outbox.deliveries(job_id)
    assert [d["event_id"] for d in deliveries] == status_ids
    assert {d["event_type"] for d in deliveries} == {"job.status"}
    assert [d["payload"]["data"]["status"] for d in deliveries] == [
        "queued",
        "running",
        "succeeded",
    ]
    tenant_secret = KeyStore(store.engine).tenant(tenant)["webhook_secret"]
    for d in deliveries:
        assert d["state"] == "pending" and d["attempts"] == 0 and d["log"] == []
        assert d["url"] == hook["url"] and d["secret"] == tenant_secret
        assert d["payload"]["id"] == d["event_id"] and d["payload"]["job_id"] == job_id
    assert outbox.deliveries(plain) == []

    # Without "events" the default set applies; a hook's own secret wins over the tenant's.
    own = {"url": "https://example.com/other", "secret": "whsec_own"}
    other = store.create(new_job(tenant, webhook=own))[0]["id"]
    claim_one(store, other)
    store.succeed(other, 1, "r")
    got = outbox.deliveries(other)
    assert [d["event_type"] for d in got] == [
        "job.status",
        "job.status",
        "job.result",
        "job.status",
    ]
    assert {d["secret"] for d in got} == {"whsec_own"}


def test_claim_deliveries_locks_them(store, outbox, engine, tenant):
    hook = {"url": "https://example.com/hook", "events": ["job.status"]}
    for _ in range(3):
        store.create(new_job(tenant, webhook=hook))
    first = outbox.claim_deliveries(2, lock_s=60)
    assert len(first) == 2
    assert all(d["locked_until"] > time.time() + 50 for d in first)
    rest = outbox.claim_deliveries(10, lock_s=60)
    assert len(rest) == 1 and rest[0]["id"] not in {d["id"] for d in first}
    assert outbox.claim_deliveries(10, lock_s=60) == []
    # Once the lock passes (a deliverer died), they are claimed again.
    with engine.begin() as conn:
        conn.execute(update(webhook_deliveries).values(locked_until=time.time() - 1))
    assert len(outbox.claim_deliveries(10, lock_s=60)) == 3
    # Not yet due: not claimed.
    with engine.begin() as conn:
        conn.execute(
            update(webhook_deliveries).values(locked_until=None, next_attempt_at=time.time() + 60)
        )
    assert outbox.claim_deliveries(10, lock_s=60) == []


def test_claim_deliveries_concurrently_hands_each_out_once(engines, store, tenant):
    hook = {"url": "https://example.com/hook", "events": ["job.status"]}
    for _ in range(30):
        store.create(new_job(tenant, webhook=hook))
    outboxes = [WebhookOutbox(engines()) for _ in range(3)]

    def drain(i: int) -> list[str]:
        got = []
        while batch := outboxes[i].claim_deliveries(4, lock_s=60):
            got.extend(d["id"] for d in batch)
        return got

    claimed = [d for ids in run_threads(3, drain) for d in ids]
    assert len(claimed) == len(set(claimed)) == 30


def test_record_delivery_outcomes(store, outbox, tenant):
    hook = {"url": "https://example.com/hook", "events": ["job.status"]}
    for _ in range(3):
        store.create(new_job(tenant, webhook=hook))
    ok, retry, dead = outbox.claim_deliveries(10, lock_s=60)

    outbox.record_delivery(ok, {"ok": True, "status": 204, "ms": 12}, None)
    outbox.record_delivery(
        retry, {"ok": False, "status": 500, "error": "HTTP 500"}, time.time() + 30
    )
    outbox.record_delivery(dead, {"ok": False, "status": None, "error": "refused"}, None)

    by_id = {d["id"]: d for job in store.list(tenant)[0] for d in outbox.deliveries(job["id"])}
    done = by_id[ok["id"]]
    assert done["state"] == "succeeded" and done["attempts"] == 1
    assert done["delivered_at"] is not None and done["last_status"] == 204
    assert done["locked_until"] is None
    assert len(done["log"]) == 1
    assert done["log"][0]["attempt"] == 1 and done["log"][0]["status"] == 204
    again = by_id[retry["id"]]
    assert again["state"] == "pending" and again["attempts"] == 1
    assert again["next_attempt_at"] > time.time() + 20
    assert again["last_error"] == "HTTP 500" and again["delivered_at"] is None
    assert by_id[dead["id"]]["state"] == "failed"
    assert by_id[dead["id"]]["last_error"] == "refused"
    assert outbox.claim_deliveries(10, lock_s=60) == []  # none due: one is in 30 s

    # A second failure appends to the log.
    outbox.record_delivery(again, {"ok": True, "status": 200}, None)
    final = next(d for d in outbox.deliveries(again["job_id"]) if d["id"] == again["id"])
    assert final["state"] == "succeeded" and final["attempts"] == 2
    assert [entry["attempt"] for entry in final["log"]] == [1, 2]


# ---- events ------------------------------------------------------------------------------------


def test_events_since_returns_late_rows_too(store, tenant):
    job_id = store.create(new_job(tenant))[0]["id"]
    claim_one(store, job_id)
    store.progress(job_id, 1, 10, None)
    store.progress(job_id, 1, 20, None)
    rows = [e["row"] for e in store.events()]
    assert len(rows) == 4 and rows == sorted(rows)
    assert [e["row"] for e in store.events_since(rows[2])] == rows[3:]
    got = store.events_since(rows[2], also_rows=[rows[0], rows[1]])
    assert [e["row"] for e in got] == [rows[0], rows[1], rows[3]]
    assert store.events_since(rows[-1]) == []
    assert [e["row"] for e in store.events_since(rows[-1], [rows[1]])] == [rows[1]]
    ids = [e["id"] for e in store.events(job_id=job_id)]
    assert [e["id"] for e in store.events(tenant_id=tenant, after_id=ids[0], limit=2)] == ids[1:3]
    assert store.last_event_id(tenant) == ids[-1]
    assert store.events(tenant_id="ten_other") == []


def test_event_ids_are_numbered_per_tenant(store, keys, tenant):
    """An event's id is its number within its tenant: another tenant's first event is 1
    whatever this one wrote, so ids tell nothing of other tenants' volume."""
    for n in range(5):
        store.create(new_job(tenant, input={"n": n}))
    other = keys.ensure_tenant("numbered-apart")
    store.create(new_job(other, input={"n": 1}))
    store.create(new_job(other, input={"n": 2}))
    assert [e["id"] for e in store.events(tenant_id=other)] == [1, 2]
    assert [e["id"] for e in store.events(tenant_id=tenant)] == [1, 2, 3, 4, 5]
    assert store.last_event_id(other) == 2


def test_events_written_before_numbering_keep_their_ids_and_new_ones_follow(db_url):
    """Upgrading a database with events: old events keep their global id as their number,
    and each tenant's next events are numbered above every old one (a client resuming with an
    old Last-Event-ID misses nothing)."""
    from alembic import command

    from busque.db.migrate import alembic_config

    command.downgrade(alembic_config(db_url), "0008")
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            for tenant in ("ten_a", "ten_b"):
                conn.execute(
                    text(
                        "INSERT INTO tenants (id, name, webhook_secret, created_at) "
                        "VALUES (:t, :t, 'secret', 0)"
                    ),
                    {"t": tenant},
                )
            conn.execute(
                text(
                    "INSERT INTO jobs (id, tenant_id, model, input, params, state, priority, "
                    "progress, attempt, max_attempts, timeout_s, run_after, cancel_requested, "
                    "created_at, updated_at) VALUES ('job_old', 'ten_a', 'echo', '{}', '{}', "
                    "'queued', 0, 0, 0, 3, 60, 0, false, 0, 0)"
                )
            )
            for n in range(3):
                conn.execute(
                    text(
                        "INSERT INTO job_events (job_id, tenant_id, type, attempt, data, "
                        "created_at) VALUES ('job_old', 'ten_a', 'job.status', 0, '{}', :n)"
                    ),
                    {"n": n},
                )
        upgrade(db_url)
        store = JobStore(engine, SETTINGS, DEFAULT_EVENTS)
        old = [e["id"] for e in store.events(tenant_id="ten_a")]
        assert old == [e["row"] for e in store.events(tenant_id="ten_a")]
        store.create(new_job("ten_a"))
        store.create(new_job("ten_b"))
        assert store.last_event_id("ten_a") == old[-1] + 1
        assert store.last_event_id("ten_b") == old[-1] + 1
    finally:
        engine.dispose()


async def _next(sub, timeout: float = 5.0) -> dict:
    event = await sub.get(timeout)
    assert event is not None, "no event arrived"
    return event


async def _stop(tail: EventTail) -> None:
    for sub in list(tail._subscribers):
        sub.close()
    if tail._task is not None:
        tail._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tail._task


def test_event_tail_delivers_new_events_to_matching_subscribers(store, keys, tenant):
    other_tenant = keys.ensure_tenant("other")
    old = store.create(new_job(tenant))[0]["id"]  # before subscribing: not replayed

    async def main():
        tail = EventTail(store, poll_s=0.01)
        by_job = await tail.job(old)
        assert tail._follow is not None  # started before subscribe returned: replay-safe
        by_tenant = await tail.subscribe(lambda e: e["tenant_id"] == tenant)
        try:
            job_id = await asyncio.to_thread(lambda: store.create(new_job(tenant))[0]["id"])
            foreign = await asyncio.to_thread(lambda: store.create(new_job(other_tenant))[0])
            set_job(store.engine, job_id, run_after=time.time() + 60)
            set_job(store.engine, foreign["id"], run_after=time.time() + 60)
            await asyncio.to_thread(claim_one, store, old)
            got = [await _next(by_tenant) for _ in range(2)]
            assert [(e["job_id"], e["data"]["status"]) for e in got] == [
                (job_id, "queued"),
                (old, "running"),
            ]
            mine = await _next(by_job)
            assert mine["job_id"] == old and mine["data"]["status"] == "running"
            assert await by_job.get(0.2) is None
            assert await by_tenant.get(0.05) is None  # nothing of the other tenant's
            assert foreign["tenant_id"] == other_tenant
            by_job.close()
            await asyncio.to_thread(store.progress, old, 1, 50, None)
            assert (await _next(by_tenant))["type"] == "job.progress"
            assert by_job.queue.empty()
        finally:
            await _stop(tail)

    asyncio.run(main())


def _insert_event(conn, job: dict, type_: str, event_id: int | None = None) -> int:
    values = {
        "job_id": job["id"],
        "tenant_id": job["tenant_id"],
        "type": type_,
        "attempt": 0,
        "data": {"type": type_},
        "created_at": time.time(),
    }
    if event_id is not None:
        values["id"] = event_id
    values["seq"] = 10**9 + (event_id or 0)  # its number within the tenant: not under test here
    return conn.execute(insert(job_events).values(values).returning(job_events.c.id)).scalar_one()


def test_event_tail_delivers_an_event_that_commits_late(store, engine, tenant):
    """A smaller event id that commits after a larger one must still reach subscribers."""
    job = store.create(new_job(tenant))[0]

    async def main():
        tail = EventTail(store, poll_s=0.01, gap_s=10)
        sub = await tail.job(job["id"])
        try:
            if is_postgres(engine):
                # Two writers: A takes the smaller id from the sequence and commits last.
                with engine.connect() as conn_a, engine.connect() as conn_b:
                    txn_a = conn_a.begin()
                    id_a = _insert_event(conn_a, job, "late")
                    with conn_b.begin():
                        id_b = _insert_event(conn_b, job, "early")
                    assert id_a < id_b
                    got = await _next(sub)
                    assert (got["row"], got["type"]) == (id_b, "early")
                    await asyncio.sleep(0.1)  # several polls while A is still open
                    assert sub.queue.empty()
                    assert id_a in tail._follow.gaps
                    txn_a.commit()
            else:
                # SQLite has one writer at a time: make the hole with explicit ids instead.
                last, _ = store.recent_gaps(1)
                id_a, id_b = last + 1, last + 2
                with engine.begin() as conn:
                    _insert_event(conn, job, "early", id_b)
                got = await _next(sub)
                assert (got["row"], got["type"]) == (id_b, "early")
                assert id_a in tail._follow.gaps
                with engine.begin() as conn:
                    _insert_event(conn, job, "late", id_a)
            late = await _next(sub)
            assert (late["row"], late["type"]) == (id_a, "late")
            await asyncio.sleep(0.1)
            assert sub.queue.empty()  # each event once
            assert id_a not in tail._follow.gaps
        finally:
            await _stop(tail)

    asyncio.run(main())


# ---- counts ------------------------------------------------------------------------------------


def test_counts_by_state(store, tenant):
    assert store.counts_by_state() == dict.fromkeys(
        ("queued", "running", "succeeded", "failed", "canceled"), 0
    )
    ids = [store.create(new_job(tenant))[0]["id"] for _ in range(4)]
    store.request_cancel(ids[0], tenant)
    running = store.claim("d1", 2)
    store.succeed(running[0]["id"], 1, None)
    assert store.counts_by_state() == {
        "queued": 1,
        "running": 1,
        "succeeded": 1,
        "failed": 0,
        "canceled": 1,
    }


# ---- API keys ----------------------------------------------------------------------------------


def test_keys_create_and_verify(keys):
    created = keys.create("acme", "ci", ("jobs:read", "jobs:write"))
    assert created.key.startswith("bq_")
    principal = keys.verify(created.key)
    assert principal is not None
    assert principal.tenant_id == created.tenant_id == keys.ensure_tenant("acme")
    assert principal.key_id == created.key_id
    assert principal.scopes == {"jobs:read", "jobs:write"}
    assert principal.allows("jobs:read") and not principal.allows("objects:read")
    assert keys.verify(f"  {created.key}\n") == principal  # surrounding whitespace is fine
    admin = keys.verify(keys.create("acme", "admin", ("admin",)).key)
    assert admin.allows("objects:write")
    assert keys.ensure_tenant("acme") == created.tenant_id  # one tenant per name
    listed = keys.list("acme")
    assert [k["id"] for k in listed] == [created.key_id, admin.key_id]
    assert all("key_hash" not in k for k in listed)
    assert keys.list("nobody") == []


def test_keys_reject_wrong_or_malformed_keys(keys):
    created = keys.create("acme", "ci")
    key_id, secret = parse_key(created.key)
    public = key_id.removeprefix("key_")
    for bad in (
        f"bq_{public}_{secret}x",
        f"bq_{public}_wrong",
        f"bq_000000000000_{secret}",
        f"xx_{public}_{secret}",
        f"bq_{public}",
        f"bq__{secret}",
        f"bq_{public}_{secret}_extra",
        "",
        "garbage",
    ):
        assert keys.verify(bad) is None, bad


def test_keys_revoke(keys):
    created = keys.create("acme", "ci")
    assert keys.revoke(created.key_id) is True
    assert keys.verify(created.key) is None
    assert keys.revoke(created.key_id) is False
    assert keys.revoke("key_unknown") is False
    assert keys.list("acme")[0]["revoked_at"] is not None


def test_keys_unknown_scope(keys):
    with pytest.raises(ValueError, match="unknown scopes"):
        keys.create("acme", "ci", ("jobs:read", "jobs:delete"))
    assert keys.list() == []


def test_keys_are_stored_hashed(keys, engine):
    created = keys.create("acme", "ci")
    secret = parse_key(created.key)[1]
    with engine.connect() as conn:
        row = conn.execute(select(api_keys).where(api_keys.c.id == created.key_id)).one()
        dump = conn.execute(text("SELECT * FROM api_keys")).all()
    assert row.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert all(secret not in str(value) for r in dump for value in r)


class _AnyStr:
    def __eq__(self, other):
        return isinstance(other, str) and bool(other)

    def __repr__(self):
        return "<any non-empty str>"


ANY_STR = _AnyStr()


def test_commits_wake_watchers(db_url, store, tenant):
    """LISTEN/NOTIFY on PostgreSQL (triggers from migration 0002), data_version on SQLite."""
    from busque.db.notify import watch_commits

    woken = threading.Event()
    watcher = watch_commits(db_url, "busque_jobs", woken.set)
    assert watcher is not None
    try:
        time.sleep(0.5)  # the watcher is listening (it calls back once when it starts)
        woken.clear()
        time.sleep(0.2)
        assert not woken.is_set()  # nothing committed, nothing heard
        store.create(new_job(tenant))
        assert woken.wait(5), "a commit did not wake the watcher"
    finally:
        watcher.stop()


def test_sqlite_watcher_backs_off_when_idle_and_still_hears_commits(tmp_path):
    """A quiet database is polled at the idle interval, and a commit then still calls back and
    brings the fast interval back."""
    import sqlite3

    from busque.db.notify import SqliteWatcher

    path = str(tmp_path / "watched.db")
    writer = sqlite3.connect(path)
    writer.execute("PRAGMA journal_mode=wal")
    writer.execute("CREATE TABLE t (x INTEGER)")
    writer.commit()
    woken = threading.Event()
    watcher = SqliteWatcher(
        path, woken.set, interval_s=0.002, idle_interval_s=0.05, active_s=1.0
    ).start()
    try:
        assert woken.wait(5)  # it calls back once when it starts
        woken.clear()
        deadline = time.monotonic() + 5
        while watcher.poll_interval_s < 0.05 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert watcher.poll_interval_s == 0.05, "an idle watcher did not back off"
        assert not woken.is_set()
        writer.execute("INSERT INTO t VALUES (1)")
        writer.commit()
        assert woken.wait(5), "a commit after a quiet spell did not wake the watcher"
        assert watcher.poll_interval_s == 0.002
    finally:
        watcher.stop()
        writer.close()


def test_a_second_cancel_of_a_running_attempt_still_records_canceled(store, tenant):
    """A second cancel of a running job (the API's, then the lease loop's) that came while the
    attempt's write of its canceled state waited for a worker thread cancelled that write: the
    job stayed running until its lease ran out (30 s here). Here the threads are kept busy so
    the write waits."""
    from busque.config import Settings
    from busque.jobs.dispatcher import Dispatcher
    from busque.runtime import Runtime

    settings = Settings(jobs=SETTINGS.model_dump())
    started = threading.Event()

    async def model_stream():  # a model that reports progress, then works until cancelled
        yield Progress(1.0, "working")
        started.set()
        await asyncio.sleep(60)

    async def scenario() -> dict:
        loop = asyncio.get_running_loop()
        threads = ThreadPoolExecutor(max_workers=2)
        loop.set_default_executor(threads)
        dispatcher = Dispatcher(
            settings,
            store,
            Runtime(settings).routes(),
            lambda deployment, job: model_stream(),
            WebhookOutbox(store.engine),
        )
        job, _ = store.create(new_job(tenant, model="echo"))
        dispatcher.start()
        try:
            while not started.is_set():
                await asyncio.sleep(0.02)
            busy = [loop.run_in_executor(threads, time.sleep, 0.5) for _ in range(2)]
            assert dispatcher.cancel(job["id"])
            await asyncio.sleep(0.1)  # its canceled state now waits for a thread
            assert dispatcher.cancel(job["id"])
            await asyncio.gather(*busy)
            deadline = time.monotonic() + 10
            while (row := store.get(job["id"], tenant))["state"] == "running":
                assert time.monotonic() < deadline, "the job stayed running after two cancels"
                await asyncio.sleep(0.05)
            return row
        finally:
            await dispatcher.stop()

    assert asyncio.run(scenario())["state"] == "canceled"


def test_fair_share_allocation():
    from busque.jobs.fair_share import allocate

    queued = {"a": (90, "job_1"), "b": (1, "job_9")}
    assert allocate(queued, {}, {}, 2) == {"a": 1, "b": 1}
    assert allocate(queued, {"a": 5}, {}, 3) == {"b": 1, "a": 2}  # b's one job, then a's
    assert allocate(queued, {}, {}, 0) == {}
    assert allocate({"a": (2, "job_1")}, {}, {}, 10) == {"a": 2}  # never more than is due
    both = {"a": (50, "job_1"), "b": (50, "job_2")}
    assert allocate(both, {}, {"a": 2.0}, 9) == {"a": 6, "b": 3}


# ---- quotas --------------------------------------------------------------------------------------


def test_a_running_cap_holds_across_dispatchers_claiming_at_once(engines, keys):
    """quotas.running_jobs 2 for one tenant: four dispatchers claiming at the same moment start
    2 of its 12 jobs between them (each counts what runs inside its claim), and another
    tenant's jobs are not held back."""

    quotas = QuotaSettings(tenants={"capped": {"running_jobs": 2}})
    stores = [JobStore(engines(), SETTINGS, DEFAULT_EVENTS, quotas) for _ in range(4)]
    capped, free = keys.ensure_tenant("capped"), keys.ensure_tenant("free")
    for n in range(12):
        stores[0].create(new_job(capped, input={"n": n}))
    for n in range(3):
        stores[0].create(new_job(free, input={"n": n}))
    start = threading.Barrier(len(stores))
    claimed: list[dict] = []

    def claim(store):
        start.wait()
        claimed.extend(store.claim(f"owner-{id(store)}", 8))

    threads = [threading.Thread(target=claim, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    by_tenant = Counter(job["tenant_id"] for job in claimed)
    assert by_tenant[capped] == 2 and by_tenant[free] == 3, by_tenant
    assert stores[0].claim("later", 8) == []  # still capped while those 2 run


def test_replicas_share_one_bucket(engine):
    """Two Gateway replicas (two RateLimiters on one database) let a tenant through at its rate
    between them, not each at the full rate: over 2 s at 10/s with a burst of 5, about 25
    requests, within a lease (1 token at 10/s) per replica."""
    tenant = f"ten_{time.time_ns()}"
    quota = QuotaSettings(requests_per_s=10, burst=5)

    async def hammer(limiter: RateLimiter, until: float) -> int:
        admitted = 0
        while time.monotonic() < until:
            try:
                await limiter.admit(tenant, quota)
                admitted += 1
            except ApiError:
                await asyncio.sleep(0.01)
        return admitted

    async def both() -> list[int]:
        until = time.monotonic() + 2.0
        replicas = [RateLimiter(RateBuckets(engine)) for _ in range(2)]
        return await asyncio.gather(*(hammer(r, until) for r in replicas))

    admitted = asyncio.run(both())
    assert 20 <= sum(admitted) <= 28, admitted
    assert min(admitted) > 0, admitted  # both replicas drew on the bucket


# ---- labels --------------------------------------------------------------------------------------


def test_labels_filter_a_tenants_list_and_ride_on_its_events(store, keys, tenant):
    other = keys.ensure_tenant("labelled-apart")
    mine = store.create(new_job(tenant, labels={"customer": "42", "plan": "pro"}))[0]
    store.create(new_job(tenant, labels={"customer": "43"}, input={"n": 2}))
    store.create(new_job(other, labels={"customer": "42"}))
    found, _ = store.list(tenant, labels={"customer": "42"})
    assert [j["id"] for j in found] == [mine["id"]]
    assert found[0]["labels"] == {"customer": "42", "plan": "pro"}
    assert store.list(tenant, labels={"customer": "42", "plan": "free"})[0] == []
    assert len(store.list(tenant)[0]) == 2
    [event] = store.events(job_id=mine["id"])
    assert event["labels"] == {"customer": "42", "plan": "pro"}
    by_job = {e["job_id"]: e["labels"] for e in store.events_since(0)}
    assert sorted(by_job.values(), key=str) == sorted(
        [{"customer": "42", "plan": "pro"}, {"customer": "43"}, {"customer": "42"}], key=str
    )
