"""Per-tenant quotas through the real server: requests per second, request bodies in flight,
queued and running jobs (that replicas share one bucket, and dispatchers one running cap, is
tested on both databases in tests/test_store.py). Each is a 429
with Retry-After for the tenant over it, and nothing for the others. The session's settings give
the limits to three tenants of their own (tests/conftest.py QUOTA_TENANTS)."""

from __future__ import annotations

import contextlib
import socket
import time
from urllib.parse import urlsplit

from tests.conftest import QUOTA_TENANTS, wait_for
from tests.test_jobs_api import assert_error, submit


def tenant_key(app, name: str) -> str:
    from busque.cli import _key_store

    return _key_store(app.settings).create(name, "tests").key


def test_a_tenant_over_its_request_rate_is_refused_and_others_are_not(app, client):
    quota = QUOTA_TENANTS["rate-limited"]
    with app.client(tenant_key(app, "rate-limited")) as limited:
        answers = [limited.get("/v1/jobs", params={"limit": 1}) for _ in range(20)]
        codes = [a.status_code for a in answers]
        # The burst passes (and perhaps a token refilled meanwhile), then 429s.
        assert quota["burst"] <= codes.count(200) <= quota["burst"] + 3, codes
        refused = next(a for a in answers if a.status_code == 429)
        error = assert_error(refused, 429, "rate_limited")
        assert error["details"] == {"requests_per_s": 2, "burst": 6}
        assert refused.headers["retry-after"] == "1"  # half a second to the next token
        # A body sent over the rate is refused before it is read, like any other request.
        assert_error(limited.post("/v1/jobs", json={"model": "echo"}), 429, "rate_limited")
        # Another tenant meanwhile: no limit in this session.
        for _ in range(20):
            assert client.get("/v1/jobs", params={"limit": 1}).status_code == 200
        time.sleep(1.2)  # the rate is 2/s: a token is back
        assert limited.get("/v1/jobs", params={"limit": 1}).status_code == 200


def _start_body(app, key: str) -> socket.socket:
    """A POST /v1/jobs announcing 1000 bytes of body, of which only "{" is sent."""
    parts = urlsplit(app.url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    head = (
        f"POST /v1/jobs HTTP/1.1\r\nHost: {parts.netloc}\r\nX-API-Key: {key}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    )
    sock.sendall(head.encode())
    return sock


def test_a_tenant_trickling_bodies_holds_only_its_body_slots(app, client):
    """A tenant with a key sends bodies a byte at a time: it may hold `quotas.bodies` of them
    (2 here) and its next body is a 429 at once, while another tenant submits as usual. Before,
    1,666 such sockets held every Gateway slot until the body deadline."""
    key = tenant_key(app, "upload-limited")
    with contextlib.ExitStack() as held:
        for _ in range(QUOTA_TENANTS["upload-limited"]["bodies"]):
            held.enter_context(_start_body(app, key))
        time.sleep(0.5)  # the Gateway has taken both
        with app.client(key) as limited:
            started = time.monotonic()
            refused = limited.post("/v1/jobs", json={"model": "echo", "input": {}})
            assert time.monotonic() - started < 2
        error = assert_error(refused, 429, "too_many_uploads")
        assert error["details"] == {"limit": 2} and refused.headers["retry-after"] == "5"
        job = submit(client, "echo", {"other": "tenant"})
        assert wait_for(client, job["id"])["status"] == "succeeded"
        with app.client(key) as limited:  # reads send no body: not counted
            assert limited.get("/v1/jobs").status_code == 200
    # The trickled bodies end (closed here, or cut off at body_timeout_s): slots come back.
    deadline = time.monotonic() + app.settings.serve.body_timeout_s + 5
    with app.client(key) as limited:
        while (answer := limited.post("/v1/jobs", json={"model": "echo"})).status_code == 429:
            assert time.monotonic() < deadline, answer.text
            time.sleep(0.2)
        assert answer.status_code == 202, answer.text


def test_a_tenant_at_its_job_quotas_waits_and_others_do_not(app, client):
    """`job-limited` may have 3 jobs queued and 1 running: its 5th job (1 running + 3 queued)
    is a 429 with nothing created, an idempotent replay still answers, its jobs run one at a
    time, and another tenant's job runs meanwhile."""
    key = tenant_key(app, "job-limited")
    with app.client(key) as limited:
        jobs = [submit(limited, "sleep", {"seconds": s, "n": n}) for n, s in enumerate((3, 0.5))]
        deadline = time.monotonic() + 20
        while limited.get(f"/v1/jobs/{jobs[0]['id']}").json()["status"] == "queued":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        jobs += [submit(limited, "sleep", {"seconds": 0.5, "n": n}) for n in range(2, 4)]
        replay_key = {"Idempotency-Key": "quota-replay"}

        def job_ids():
            return [j["id"] for j in limited.get("/v1/jobs", params={"limit": 100}).json()["data"]]

        before = job_ids()
        over = limited.post(
            "/v1/jobs", json={"model": "sleep", "input": {"seconds": 1.0}}, headers=replay_key
        )
        error = assert_error(over, 429, "too_many_jobs")
        assert error["details"] == {"limit": 3} and over.headers["retry-after"] == "5"
        assert job_ids() == before

        other = submit(client, "echo", {"meanwhile": True})
        assert wait_for(client, other["id"], timeout=10)["status"] == "succeeded"

        running_at_once = 0
        deadline = time.monotonic() + 30
        while True:
            listed = limited.get("/v1/jobs", params={"limit": 100}).json()["data"]  # one moment
            states = [j["status"] for j in listed if j["id"] in {job["id"] for job in jobs}]
            running_at_once = max(running_at_once, states.count("running"))
            if all(s == "succeeded" for s in states):
                break
            assert time.monotonic() < deadline, states
            time.sleep(0.05)
        assert running_at_once == 1
        # With room again, the refused request goes through, and its replay is the same job.
        first = limited.post(
            "/v1/jobs", json={"model": "sleep", "input": {"seconds": 0}}, headers=replay_key
        )
        assert first.status_code == 202, first.text
        fillers = []
        while (
            filler := limited.post("/v1/jobs", json={"model": "sleep", "input": {"seconds": 5}})
        ).status_code == 202:
            fillers.append(filler.json()["id"])
            assert len(fillers) <= 4, "the queued quota never refused"
        assert_error(filler, 429, "too_many_jobs")
        # Over the quota again: a replay of an existing job still answers with that job.
        replay = limited.post(
            "/v1/jobs", json={"model": "sleep", "input": {"seconds": 0}}, headers=replay_key
        )
        assert replay.status_code in (200, 202) and replay.json()["id"] == first.json()["id"]
        assert replay.headers["idempotent-replayed"] == "true"
        for job_id in fillers:
            limited.post(f"/v1/jobs/{job_id}/cancel")


def test_a_full_deployment_sheds_with_503_and_retry_after(app):
    """Past max_ongoing_requests and max_queued_requests, Serve answers at once with 503 and
    Retry-After: a deployment built with busque's options (as the Gateway is, with 1000 and
    1000) on the session's Serve, shrunk to 1 and 1 so that 4 requests overflow it."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    from ray import serve

    from busque.config import DeploymentSettings
    from busque.serve.app import _options

    @serve.deployment
    class Slow:
        async def __call__(self, request) -> str:
            import asyncio

            await asyncio.sleep(3)
            return "done"

    shrunk = DeploymentSettings(num_cpus=0, max_ongoing_requests=1, max_queued_requests=1)
    serve.run(Slow.options(**_options("ShedProbe", shrunk)).bind(), name="shed-probe",
              route_prefix="/shed-probe")  # fmt: skip
    try:

        def call(_):
            started = time.monotonic()
            answer = httpx.get(f"{app.url}/shed-probe", timeout=30)
            return answer, time.monotonic() - started

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(call, range(4)))
        shed = [(a, took) for a, took in answers if a.status_code == 503]
        assert shed, [a.status_code for a, _ in answers]
        assert all(a.headers["retry-after"] == "5" and took < 2.5 for a, took in shed)
        assert any(a.status_code == 200 and a.text == "done" for a, _ in answers)
    finally:
        serve.delete("shed-probe")
