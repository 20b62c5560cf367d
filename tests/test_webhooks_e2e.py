"""Webhooks end to end: a real receiver on 127.0.0.1 gets signed deliveries from the dispatcher."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from busque.jobs.webhooks import new_secret, verify
from tests.conftest import wait_for
from tests.test_jobs_api import assert_error, submit


class Receiver:
    """Records every POST; a path's first `fail_times[path]` answers per webhook-id are 500."""

    def __init__(self):
        self.requests: list[dict] = []
        self.fail_times: dict[str, int] = {}
        self._seen: dict[tuple[str, str], int] = defaultdict(int)
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                msg_id = self.headers.get("webhook-id", "")
                with receiver._lock:
                    receiver._seen[(self.path, msg_id)] += 1
                    nth = receiver._seen[(self.path, msg_id)]
                    status = 500 if nth <= receiver.fail_times.get(self.path, 0) else 200
                    receiver.requests.append(
                        {
                            "path": self.path,
                            "headers": dict(self.headers.items()),
                            "body": body,
                            "status": status,
                        }
                    )
                self.send_response(status)
                self.send_header("content-type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"try again")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, fail_times: int = 0) -> str:
        path = f"/hook/{uuid.uuid4().hex}"
        self.fail_times[path] = fail_times
        return self.base + path

    def received(self, url: str) -> list[dict]:
        path = url.removeprefix(self.base)
        with self._lock:
            return [r for r in self.requests if r["path"] == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def tenant_secret(app):
    with app.client() as c:
        return c.get("/v1/me").json()["webhook_secret"]


def poll(fn, condition, timeout: float = 20, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if condition(value):
            return value
        assert time.monotonic() < deadline, f"condition not met in {timeout}s: {value!r}"
        time.sleep(interval)


def deliveries(client, job_id: str) -> list[dict]:
    response = client.get(f"/v1/jobs/{job_id}/webhooks")
    assert response.status_code == 200, response.text
    return response.json()["data"]


def count_jobs(client) -> int:
    """Every job of the tenant, page by page."""
    total, cursor = 0, None
    while True:
        params = {"limit": 200} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/jobs", params=params).json()
        total += len(page["data"])
        cursor = page["next_cursor"]
        if not cursor:
            return total


def settled(rows: list[dict], n: int) -> bool:
    return len(rows) == n and all(d["state"] != "pending" for d in rows)


def test_deliveries_are_signed_and_logged(client, receiver, tenant_secret):
    url = receiver.url()
    job = submit(client, "echo", {"hook": 1}, webhook={"url": url})
    assert job["webhook"] == {"url": url, "events": None}
    wait_for(client, job["id"])
    # Default events: job.status (queued, running, succeeded) and job.result.
    log = poll(lambda: deliveries(client, job["id"]), lambda rows: settled(rows, 4))
    assert all(d["state"] == "succeeded" and d["attempts"] == 1 for d in log)
    assert all(d["last_status"] == 200 and d["url"] == url for d in log)
    got = poll(lambda: receiver.received(url), lambda r: len(r) >= 4)
    assert len(got) == 4  # each delivered exactly once

    payloads = []
    for request in got:
        verify(tenant_secret, request["headers"], request["body"])  # raises if not genuine
        payload = json.loads(request["body"])
        assert payload["data"]["job_id"] == job["id"]
        payloads.append((request["headers"]["webhook-id"], payload))
    by_id = {d["id"]: d for d in log}
    assert {msg_id for msg_id, _ in payloads} == set(by_id)
    for msg_id, payload in payloads:
        assert payload["type"] == by_id[msg_id]["event_type"]
        assert payload["data"]["event_id"] == by_id[msg_id]["event_id"]
    statuses = sorted(
        (p["data"]["event_id"], p["data"]["status"])
        for _, p in payloads
        if p["type"] == "job.status"
    )
    assert [s for _, s in statuses] == ["queued", "running", "succeeded"]
    [result] = [p for _, p in payloads if p["type"] == "job.result"]
    assert result["data"]["result"] == {"echo": {"hook": 1}}
    # A forged body does not verify with the same headers.
    with pytest.raises(Exception, match="signature"):
        verify(tenant_secret, got[0]["headers"], got[0]["body"] + b" ")


def test_failed_deliveries_are_retried_until_they_succeed(client, receiver, tenant_secret):
    url = receiver.url(fail_times=2)
    job = submit(client, "echo", {"hook": 2}, webhook={"url": url, "events": ["job.result"]})
    wait_for(client, job["id"])
    [delivery] = poll(
        lambda: deliveries(client, job["id"]), lambda rows: settled(rows, 1), timeout=20
    )
    assert delivery["state"] == "succeeded", delivery
    assert delivery["attempts"] == 3
    assert [entry["status"] for entry in delivery["log"]] == [500, 500, 200]
    assert delivery["last_status"] == 200 and delivery["delivered_at"]
    got = receiver.received(url)
    assert [r["status"] for r in got] == [500, 500, 200]
    assert {r["headers"]["webhook-id"] for r in got} == {delivery["id"]}  # same id on retries
    for request in got:
        verify(tenant_secret, request["headers"], request["body"])


def test_custom_events_and_secret(client, receiver, tenant_secret):
    secret = new_secret()
    url = receiver.url()
    job = submit(
        client,
        "echo",
        {"hook": 3},
        webhook={"url": url, "events": ["job.result"], "secret": secret},
    )
    assert job["webhook"] == {"url": url, "events": ["job.result"]}
    assert secret not in json.dumps(job)  # the secret is never shown back
    wait_for(client, job["id"])
    [delivery] = poll(lambda: deliveries(client, job["id"]), lambda rows: settled(rows, 1))
    assert delivery["event_type"] == "job.result" and delivery["state"] == "succeeded"
    [request] = poll(lambda: receiver.received(url), lambda r: len(r) >= 1)
    verify(secret, request["headers"], request["body"])
    with pytest.raises(Exception, match="signature"):
        verify(tenant_secret, request["headers"], request["body"])
    payload = json.loads(request["body"])
    assert payload["type"] == "job.result"
    assert payload["data"]["result"] == {"echo": {"hook": 3}}
    time.sleep(0.5)  # nothing else trickles in for the status events
    assert len(receiver.received(url)) == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://10.1.2.3/x",
        "http://169.254.169.254/",
        "http://[::1]:9/x",
        "ftp://example.com/",
        "http://user:pw@127.0.0.1/",
        "http://[2002:7f00:1::]/x",  # 6to4 of 127.0.0.1
        "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
        "http://[fec0::1]/x",  # site-local
    ],
)
def test_unsafe_webhook_urls_are_refused_and_create_nothing(client, url):
    before = count_jobs(client)
    response = client.post(
        "/v1/jobs", json={"model": "echo", "input": {"refused": url}, "webhook": {"url": url}}
    )
    assert_error(response, 422, "invalid_webhook")
    after = client.get("/v1/jobs", params={"limit": 200, "model": "echo"}).json()["data"]
    assert not any(j["input"] == {"refused": url} for j in after)
    assert count_jobs(client) == before


def test_bad_webhook_fields_are_refused(client, receiver):
    url = receiver.url()
    before = count_jobs(client)
    for webhook in (
        {"url": url, "events": ["job.exploded"]},
        {"url": url, "events": "job.result"},
        {"url": url, "secret": "not-a-secret"},
        {"events": ["job.result"]},
    ):
        response = client.post("/v1/jobs", json={"model": "echo", "webhook": webhook})
        assert_error(response, 422, "invalid_request")
    assert count_jobs(client) == before
    assert receiver.received(url) == []


class TrickleReceiver:
    """Accepts webhooks and answers them one byte a second, never finishing."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/slow"
        self.accepted = 0
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn):
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
            while not self.stop.wait(1):
                try:
                    conn.sendall(b"x")
                except OSError:
                    return

    def close(self):
        self.stop.set()
        self.server.close()


def test_a_trickling_receiver_delays_only_its_own_webhooks(app, client, receiver, other_tenant_key):
    """One tenant's receiver trickles its answers; another tenant's webhook still arrives at
    once, and the trickled attempts end at the attempt timeout, not when the receiver stops."""
    slow = TrickleReceiver()
    try:
        stuck = [
            submit(
                client, "echo", {"stuck": i}, webhook={"url": slow.url, "events": ["job.result"]}
            )
            for i in range(12)  # more than the dispatchers send to one receiver at once
        ]
        poll(lambda: slow.accepted, lambda n: n >= 1)
        url = receiver.url()
        with app.client(other_tenant_key) as other:
            sent = time.monotonic()
            job = submit(other, "echo", {"fast": 1}, webhook={"url": url, "events": ["job.result"]})
            arrived = poll(lambda: receiver.received(url), bool, timeout=15)
            delay = time.monotonic() - sent
            assert wait_for(other, job["id"], timeout=30)["status"] == "succeeded"
        # Before: the deliverer waited for its whole batch, so this took the slow ones' timeout.
        assert delay < 3.0, f"a healthy receiver waited {delay:.1f}s behind a trickling one"
        assert arrived
        # Each dispatcher sends at most `per_destination` at once to one receiver.
        limit = app.settings.webhooks.per_destination * app.settings.serve.dispatcher.min_replicas
        assert 0 < slow.accepted <= limit < len(stuck)
        timeout_s = app.settings.webhooks.timeout_s
        first = poll(
            lambda: [d for d in deliveries(client, stuck[0]["id"]) if d["log"]],
            bool,
            timeout=timeout_s + 10,
        )
        (attempt, *_) = first[0]["log"]
        assert attempt["error"].startswith(f"timeout after {timeout_s}s"), attempt
        assert attempt["duration_ms"] < (timeout_s + 1.5) * 1000, attempt
    finally:
        slow.close()
