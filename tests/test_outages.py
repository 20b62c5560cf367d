"""The object store and the database going away mid-load, through the real app: busque on
PostgreSQL and SeaweedFS, each behind a TCP proxy the test cuts (connections reset, then
refused) and restores. Every answer is a 202 or a 503 with Retry-After and a clear code, never
a 500; afterwards no media row exists that was not accepted, every accepted one is indexed, no
stored object is left without its row, and a photo refused during the outage is no duplicate.

The module replaces the session's app with its own for its duration, then restores it."""

from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
import numpy as np
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.engine import make_url

from busque.db.migrate import upgrade
from busque.db.schema import media, object_deletions
from busque.media.normalize import storage_keys
from busque.storage import S3ObjectStore
from busque.testing.tcp_proxy import TcpProxy
from tests.conftest import FAST_JOBS, start_app, wait_for
from tests.conftest import test_settings as settings_like_the_sessions
from tests.test_ingest import jpeg

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(600)]

METRICS_TOKEN = "scrape-me"


@pytest.fixture(scope="module")
def outage(app, postgres_url, seaweedfs_server, tmp_path_factory):
    from ray import serve

    name = f"outage_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    server = make_url(postgres_url)
    db_proxy = TcpProxy(server.host, server.port)
    url = server.set(database=name, port=db_proxy.port).render_as_string(hide_password=False)
    upgrade(url)
    s3_host, s3_port = seaweedfs_server["endpoint"].split(":")
    s3_proxy = TcpProxy(s3_host, int(s3_port))
    storage = {
        "backend": "s3",
        "s3_endpoint": s3_proxy.address,
        "s3_access_key": seaweedfs_server["access_key"],
        "s3_secret_key": seaweedfs_server["secret_key"],
        "s3_bucket": name.replace("_", "-"),
    }
    settings = settings_like_the_sessions(
        tmp_path_factory.mktemp("outage"),
        database={"url": url},
        storage=storage,
        faces={"enabled": False},
        # Only ingest runs here: the text generator and the echo host stay on demand (idle).
        model_deployments={
            name: options
            for name, options in app.settings.model_deployments.items()
            if name not in ("textgen", "utility")
        },
        media={"janitor_s": 1, "orphan_after_s": 5},
        # The session's ports (Serve's proxy keeps them), /metrics kept to the scraper.
        serve=app.settings.serve.model_dump(mode="json") | {"metrics_token": METRICS_TOKEN},
        # Attempts that meet the outage fail and are retried: enough of them to outlast it.
        jobs={**FAST_JOBS, "max_attempts": 20, "retry_backoff_s": 0.5, "retry_backoff_max_s": 2},
    )
    serve.delete(app.settings.serve.app_name)
    try:
        yield start_app(settings), db_proxy, s3_proxy
    finally:
        serve.delete(settings.serve.app_name)
        db_proxy.close()
        s3_proxy.close()
        start_app(app.settings)  # the session's app again, for the modules after this one
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def photo(seed: int) -> bytes:
    noise = np.random.default_rng(seed).integers(0, 256, size=(96, 96, 3), dtype=np.uint8)
    return jpeg(noise, size=None)


class Load:
    """Ingests distinct photos from a thread until stopped, keeping every answer."""

    def __init__(self, client, start: int):
        self.client, self.next = client, start
        self.answers: list[tuple[int, bytes, dict]] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped.is_set():
            data = photo(self.next)
            self.next += 1
            response = self.client.post(
                "/v1/ingest",
                files={"image": ("p.jpg", data, "image/jpeg")},
                data={"collection": "outage"},
            )
            try:
                body = response.json()
            except ValueError:
                body = {"text": response.text}
            self.answers.append((response.status_code, data, body | dict(response.headers)))

    def stop(self) -> list[tuple[int, bytes, dict]]:
        self.stopped.set()
        self.thread.join(60)
        return self.answers


@pytest.mark.parametrize("part", ["object store", "database"])
def test_an_outage_answers_503_and_leaves_no_orphan(outage, part):
    app, db_proxy, s3_proxy = outage
    proxy = s3_proxy if part == "object store" else db_proxy
    code = "storage_unavailable" if part == "object store" else "database_unavailable"
    with app.client() as client:
        load = Load(client, start=0 if part == "object store" else 10_000)
        time.sleep(2)
        proxy.down()
        time.sleep(3)
        with httpx.Client(base_url=app.url, timeout=30) as anonymous:
            ready = anonymous.get("/readyz")
        time.sleep(3)
        proxy.up()
        time.sleep(3)
        answers = load.stop()
        # Readiness says which part is out, without naming internal hosts.
        assert ready.status_code == 503, ready.text
        check = "object_store" if part == "object store" else "database"
        assert ready.json()["checks"][check]["ok"] is False
        assert proxy.address not in ready.text and str(proxy.port) not in ready.text
        statuses = [status for status, _, _ in answers]
        assert 500 not in statuses, [a for a in answers if a[0] == 500][:3]
        assert set(statuses) <= {202, 503}, statuses
        refused = [(data, body) for status, data, body in answers if status == 503]
        assert refused, f"no request met the {part} outage: {statuses}"
        for _, body in refused:
            assert body["error"]["code"] == code, body
            assert body["retry-after"] == "5", body
        accepted = {body["media_id"]: body for status, _, body in answers if status == 202}
        for body in accepted.values():
            try:
                job = wait_for(client, body["job_id"], timeout=180)
            except AssertionError:
                job = client.get(f"/v1/jobs/{body['job_id']}").json()
                from busque.runtime import Runtime

                store = Runtime(app.settings).jobs
                job["events"] = [(e["type"], e["data"]) for e in store.events(job_id=job["id"])]
                job["lease"] = {k: store.get(job["id"])[k] for k in ("lease_owner", "attempt")}
            assert job["status"] == "succeeded", json.dumps(job, indent=1)

        engine = create_engine(app.settings.database.url)
        deadline = time.monotonic() + 30  # the janitor: every 1 s, orphan rows after 5 s
        while True:
            with engine.connect() as conn:
                rows = {r.id: r for r in conn.execute(select(media))}
                queued = conn.execute(select(object_deletions)).all()
            ours = {m: r for m, r in rows.items() if r.collection == "outage"}
            unaccepted = set(ours) - set(accepted) - _accepted_before(app, part)
            if not unaccepted and not queued or time.monotonic() > deadline:
                break
            time.sleep(1)
        engine.dispose()
        assert not unaccepted, f"rows of refused ingests: {unaccepted}"
        assert not queued, queued
        assert all(ours[m].state == "indexed" for m in accepted)
        tenant = client.get("/v1/me").json()["tenant_id"]
        _assert_no_orphan_objects(app, tenant, rows)
        # A photo refused during the outage is new when it comes back.
        data, _ = refused[0]
        again = client.post(
            "/v1/ingest",
            files={"image": ("p.jpg", data, "image/jpeg")},
            data={"collection": "outage"},
        )
        assert again.status_code == 202, again.text
        assert again.json()["duplicate_of"] is None, again.json()
        _ACCEPTED[part] = {*accepted, again.json()["media_id"]}


_ACCEPTED: dict[str, set[str]] = {}


def _accepted_before(app, part: str) -> set[str]:
    """Media the module's earlier cases accepted (the database case runs after the store's)."""
    return set().union(*(ids for name, ids in _ACCEPTED.items() if name != part))


def _assert_no_orphan_objects(app, tenant: str, rows: dict) -> None:
    s = app.settings.storage
    objects = S3ObjectStore(s.s3_endpoint, s.s3_access_key, s.s3_secret_key, s.s3_bucket)
    expected = set()
    for row in rows.values():
        keys = storage_keys(row.tenant_id, row.id, row.sha256, row.format)
        expected |= set(keys.values())
    stored = {
        info.key
        for info in objects.list(f"{tenant}/")
        if "/originals/" in info.key or "/normalized/" in info.key or "/thumbs/" in info.key
    }
    assert stored <= expected, f"objects without a row: {sorted(stored - expected)[:5]}"


def test_metrics_can_be_kept_to_the_scraper(outage):
    app, _, _ = outage
    with httpx.Client(base_url=app.url, timeout=30) as anonymous:
        assert anonymous.get("/metrics").status_code == 401
        wrong = anonymous.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = anonymous.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert right.status_code == 200 and "busque_jobs" in right.text
