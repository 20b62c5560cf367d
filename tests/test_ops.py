"""Operations endpoints: liveness, readiness, Prometheus metrics and who-am-I."""

from __future__ import annotations

import re
import threading
import time

import httpx
import pytest

from busque.auth.keys import DEFAULT_SCOPES
from tests.conftest import wait_for
from tests.test_jobs_api import assert_error, submit


def metric(text: str, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$"
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"{name}{labels} not in metrics:\n{text}"
    return float(match.group(1))


def test_healthz_and_readyz_need_no_key(app):
    with httpx.Client(base_url=app.url, timeout=30) as anonymous:
        health = anonymous.get("/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        ready = anonymous.get("/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {
        "database",
        "object_store",
        "dispatcher",
        "cluster",
        "deployments",
    }
    for name, check in body["checks"].items():
        assert check["ok"] is True, (name, check)
        assert check["ms"] >= 0


def test_readiness_waits_for_a_deployment_still_starting(app):
    """/readyz's deployments check on a real Serve application whose one deployment takes 3 s
    to start: NotRunning names it until its replica runs (the Gateway answers long before its
    sibling deployments are up)."""
    from ray import serve

    from busque.serve.app_status import NotRunning, check_application

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    class SlowToStart:
        def __init__(self):
            time.sleep(3)

        def __call__(self) -> str:
            return "up"

    deploying = threading.Thread(
        target=serve.run, args=(SlowToStart.bind(),), kwargs={"name": "slow", "route_prefix": None}
    )
    deploying.start()
    try:
        waited = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                check_application("slow")
                break
            except NotRunning as exc:
                waited.append(exc.waiting)
                time.sleep(0.5)
        else:
            raise AssertionError(f"never RUNNING: {waited[-3:]}")
        assert ["SlowToStart"] in waited, waited  # seen starting, by name
        deploying.join(60)
        check_application("slow")  # and it stays ready once up
        with pytest.raises(NotRunning):
            check_application("no-such-application")
    finally:
        deploying.join(60)
        serve.delete("slow")


def test_metrics_count_jobs_by_state(app, client):
    """The Gateway's /metrics: gauges of the job table as it is now. The cumulative job metrics
    (finished jobs, run and queue-wait histograms) are the replicas' `ray_busque_*` on Ray's
    metrics port (tests/test_metrics.py)."""
    job = submit(client, "sleep", {"seconds": 0.2})
    assert wait_for(client, job["id"])["status"] == "succeeded"
    with httpx.Client(base_url=app.url, timeout=30) as anonymous:
        response = anonymous.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert metric(text, "busque_jobs", '{state="succeeded"}') >= 1
    for state in ("queued", "running", "failed", "canceled"):
        assert metric(text, "busque_jobs", f'{{state="{state}"}}') >= 0
    assert metric(text, "busque_queue_depth") == metric(text, "busque_jobs", '{state="queued"}')
    assert metric(text, "busque_jobs_running") == metric(text, "busque_jobs", '{state="running"}')
    # No histogram rebuilt from the last hour at each scrape (its count went down: rate() lied).
    assert "busque_job_duration_seconds" not in text

    # The succeeded count follows new jobs.
    before = metric(text, "busque_jobs", '{state="succeeded"}')
    wait_for(client, submit(client, "echo", {"metrics": 1})["id"])
    after = metric(client.get("/metrics").text, "busque_jobs", '{state="succeeded"}')
    assert after >= before + 1


def test_me_describes_the_calling_key(app, client, other_tenant_key):
    me = client.get("/v1/me")
    assert me.status_code == 200
    body = me.json()
    assert body["tenant_id"] and isinstance(body["scopes"], list)
    assert body["scopes"] == ["admin"]  # the dev key made at startup
    assert body["webhook_secret"].startswith("whsec_") and len(body["webhook_secret"]) > 20
    assert body["key_id"].startswith("key_") and body["key_id"][4:] in app.admin_key
    with app.client(other_tenant_key) as other:
        theirs = other.get("/v1/me").json()
    assert theirs["tenant"] == "other-tenant"
    assert theirs["scopes"] == sorted(DEFAULT_SCOPES) and "admin" not in theirs["scopes"]
    assert theirs["tenant_id"] != body["tenant_id"]
    assert theirs["webhook_secret"] != body["webhook_secret"]
    with httpx.Client(base_url=app.url) as anonymous:
        assert_error(anonymous.get("/v1/me"), 401, "unauthorized")


def test_a_read_only_key_does_not_see_the_webhook_secret(app):
    """With the secret, a key that may only read could forge the tenant's webhooks."""
    from busque.cli import _key_store

    keys = _key_store(app.settings)
    reader = keys.create("other-tenant", "reader", scopes=("jobs:read",)).key
    writer = keys.create("other-tenant", "writer", scopes=("jobs:read", "jobs:write")).key
    with app.client(reader) as c:
        me = c.get("/v1/me").json()
    assert me["scopes"] == ["jobs:read"] and me["webhook_secret"] is None
    with app.client(writer) as c:
        assert c.get("/v1/me").json()["webhook_secret"].startswith("whsec_")


def test_replica_logs_are_json_carrying_the_job_id(client):
    """Serve writes each replica's log as JSON lines; busque's lines about a job carry its id
    as busque_job_id (Ray reserves job_id in its structured logs for the Ray job)."""
    import glob
    import json as jsonlib
    import time as timelib

    import ray

    job = client.post("/v1/jobs", json={"model": "echo", "input": {"log": True}}).json()
    wait_for(client, job["id"])
    logs_dir = ray._private.worker.global_worker.node.get_logs_dir_path()
    deadline = timelib.monotonic() + 20
    while True:
        records = []
        for path in glob.glob(f"{logs_dir}/serve/replica_*Dispatcher*.log"):
            with open(path) as f:
                for line in f:
                    if job["id"] in line:
                        records.append(jsonlib.loads(line))
        if records or timelib.monotonic() > deadline:
            break
        timelib.sleep(0.5)
    assert records, "no dispatcher log line mentions the job"
    assert all(r.get("busque_job_id") == job["id"] for r in records)
    assert any(r.get("levelname") == "INFO" and "running job" in r["message"] for r in records)
