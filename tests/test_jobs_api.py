"""The jobs API through Ray Serve over HTTP: create, long-poll, list, cancel, retries, errors."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
import uuid
from urllib.parse import urlsplit

import httpx

from tests.conftest import wait_for


def submit(client: httpx.Client, model: str, inputs: dict | None = None, **extra) -> dict:
    response = client.post("/v1/jobs", json={"model": model, "input": inputs or {}, **extra})
    assert response.status_code == 202, response.text
    return response.json()


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def test_create_returns_202_location_and_runs_to_success(client):
    response = client.post("/v1/jobs", json={"model": "echo", "input": {"hello": "world"}})
    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] in ("queued", "running", "succeeded")
    done = wait_for(client, job["id"])
    assert done["status"] == "succeeded"
    assert done["result"] == {"echo": {"hello": "world"}}
    assert done["attempts"] == 1 and done["progress"] == 100.0
    assert done["started_at"] and done["finished_at"] >= done["started_at"]


def test_long_poll_returns_when_the_job_finishes(client):
    job = submit(client, "sleep", {"seconds": 0.5})
    started = time.monotonic()
    done = client.get(f"/v1/jobs/{job['id']}", params={"wait": 20}).json()
    elapsed = time.monotonic() - started
    assert done["status"] == "succeeded"
    assert elapsed < 15  # returned on completion, not at the end of the wait


def test_long_poll_times_out_with_the_current_state(client):
    job = submit(client, "sleep", {"seconds": 5})
    started = time.monotonic()
    current = client.get(f"/v1/jobs/{job['id']}", params={"wait": 0.5}).json()
    assert time.monotonic() - started >= 0.45
    assert current["status"] in ("queued", "running")
    client.post(f"/v1/jobs/{job['id']}/cancel")


def test_prefer_wait_answers_with_the_finished_job(client):
    response = client.post(
        "/v1/jobs", json={"model": "echo", "input": {"x": 1}}, headers={"Prefer": "wait=20"}
    )
    assert response.status_code == 201, response.text
    assert response.headers["preference-applied"] == "wait=20"
    assert response.headers["location"] == f"/v1/jobs/{response.json()['id']}"
    assert response.json()["status"] == "succeeded"
    assert response.json()["result"] == {"echo": {"x": 1}}
    slow = client.post(
        "/v1/jobs", json={"model": "sleep", "input": {"seconds": 5}}, headers={"Prefer": "wait=0.3"}
    )
    assert slow.status_code == 202 and slow.json()["status"] in ("queued", "running")
    client.post(f"/v1/jobs/{slow.json()['id']}/cancel")
    bad = client.post("/v1/jobs", json={"model": "echo"}, headers={"Prefer": "wait=soon"})
    assert_error(bad, 422, "invalid_request")


def test_idempotency_key_returns_the_same_job(client):
    key = str(uuid.uuid4())
    body = {"model": "echo", "input": {"n": 1}}
    first = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": key})
    second = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert second.headers.get("idempotent-replayed") == "true"
    different = client.post(
        "/v1/jobs", json={"model": "echo", "input": {"n": 2}}, headers={"Idempotency-Key": key}
    )
    assert_error(different, 409, "idempotency_conflict")


def test_an_empty_idempotency_key_is_refused_not_stored(client):
    # (HTTP strips the blanks around a value: an all-blank key arrives empty.)
    response = client.post(
        "/v1/jobs", json={"model": "echo", "input": {}}, headers={"Idempotency-Key": ""}
    )
    assert_error(response, 422, "invalid_request")


def test_json_types_are_taken_as_sent(client):
    """ "5" is not a number and true is not 1: pydantic's lax default converted both, in the
    request and in a model's input and parameters; a key given twice kept its last value."""
    newest = client.get("/v1/jobs", params={"limit": 1}).json()["data"]
    for body in (
        {"model": "echo", "priority": "5"},
        {"model": "echo", "priority": True},
        {"model": "echo", "webhook": {"url": "http://127.0.0.1:9/x", "events": "job.result"}},
    ):
        assert_error(client.post("/v1/jobs", json=body), 422, "invalid_request")
    for inputs in ({"seconds": "1"}, {"seconds": True}):
        error = assert_error(
            client.post("/v1/jobs", json={"model": "sleep", "input": inputs}), 422, "invalid_input"
        )
        assert error["details"]["errors"][0]["loc"] == ["seconds"], error
    error = assert_error(
        client.post("/v1/jobs", json={"model": "progress", "input": {"steps": 2.5}}),
        422,
        "invalid_input",
    )
    twice = b'{"model": "echo", "input": {"n": 1, "n": 2}}'
    error = assert_error(
        client.post("/v1/jobs", content=twice, headers={"content-type": "application/json"}),
        400,
        "invalid_json",
    )
    assert "duplicate key 'n'" in error["message"]
    assert client.get("/v1/jobs", params={"limit": 1}).json()["data"] == newest
    # Integers still fill float fields, lists still fill tuples.
    job = submit(client, "sleep", {"seconds": 0})
    assert wait_for(client, job["id"])["status"] == "succeeded"


def test_a_cancel_that_loses_the_race_to_the_end_says_so(client):
    """Jobs that end within milliseconds, canceled at once: a 200 means canceled, a 202 a
    running job asked to stop, a 409 a job that ended first; never a 200 for a job that
    succeeded."""
    answers = []
    for i in range(30):
        job = submit(client, "sleep", {"seconds": 0})
        time.sleep(i * 0.005)  # from at once to past its end: every moment of its life
        cancel = client.post(f"/v1/jobs/{job['id']}/cancel")
        assert cancel.status_code in (200, 202, 409), cancel.text
        final = wait_for(client, job["id"])
        answers.append(cancel.status_code)
        if cancel.status_code == 200:
            assert cancel.json()["status"] == final["status"] == "canceled", cancel.json()
        elif cancel.status_code == 409:
            assert cancel.json()["error"]["code"] == "job_finished"
            assert final["status"] == "succeeded"
    print("cancel answers:", {code: answers.count(code) for code in set(answers)})


def test_model_failure_is_not_retried_and_carries_the_error(client):
    job = submit(client, "fail", {"message": "kaput"})
    done = wait_for(client, job["id"])
    assert done["status"] == "failed"
    assert done["attempts"] == 1
    assert done["error"]["code"] == "model_error"
    assert "kaput" in done["error"]["message"]


def test_retryable_failure_is_retried_with_backoff(client):
    job = submit(client, "fail", {"retryable": True, "fail_attempts": 2})
    done = wait_for(client, job["id"])
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 3
    assert done["result"] == {"succeeded_on_attempt": 3}
    events = client.get(f"/v1/jobs/{job['id']}/events").text
    assert events.count('"retry_in_s"') == 2


def test_retryable_failure_fails_after_max_attempts(client):
    job = submit(client, "fail", {"retryable": True, "message": "still broken"})
    done = wait_for(client, job["id"])
    assert done["status"] == "failed"
    assert done["attempts"] == done["max_attempts"] == 3
    assert done["error"] == {"code": "flaky", "message": "still broken"}


def test_a_failed_or_canceled_job_is_retried_as_a_new_job(client, app, other_tenant_key):
    job = submit(client, "fail", {"message": "again"}, labels={"batch": "7"}, priority=5)
    assert wait_for(client, job["id"])["status"] == "failed"
    response = client.post(f"/v1/jobs/{job['id']}/retry")
    assert response.status_code == 202, response.text
    again = response.json()
    assert response.headers["Location"] == f"/v1/jobs/{again['id']}"
    assert again["id"] != job["id"] and again["status"] == "queued"
    assert (again["model"], again["input"], again["priority"]) == ("fail", job["input"], 5)
    assert again["labels"] == {"batch": "7", "retry_of": job["id"]}
    assert "again" in wait_for(client, again["id"])["error"]["message"]  # it really ran
    assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "failed"  # untouched

    done = submit(client, "echo", {"x": 1})
    assert wait_for(client, done["id"])["status"] == "succeeded"
    assert_error(client.post(f"/v1/jobs/{done['id']}/retry"), 409, "job_not_retryable")
    with app.client(other_tenant_key) as other:
        assert_error(other.post(f"/v1/jobs/{job['id']}/retry"), 404, "job_not_found")
    assert_error(client.post("/v1/jobs/job_nope/retry"), 404, "job_not_found")


def test_cancel_a_running_job_stops_it(client):
    job = submit(client, "sleep", {"seconds": 60})
    deadline = time.monotonic() + 20
    while client.get(f"/v1/jobs/{job['id']}").json()["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    response = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 202
    assert response.json()["cancel_requested"] is True
    started = time.monotonic()
    done = wait_for(client, job["id"], timeout=10)
    assert done["status"] == "canceled"
    assert done["error"]["code"] == "canceled"
    assert time.monotonic() - started < 5
    again = client.post(f"/v1/jobs/{job['id']}/cancel")  # idempotent: a retry did its work
    assert again.status_code == 200 and again.json()["status"] == "canceled", again.text


def test_cancel_a_queued_job(client):
    # A job that may only run in the future stays queued: backdate nothing, just use priority
    # order behind a burst of long sleepers would be flaky; instead cancel right away and accept
    # either outcome the race allows, but the final state must be canceled.
    job = submit(client, "sleep", {"seconds": 30})
    client.post(f"/v1/jobs/{job['id']}/cancel")
    assert wait_for(client, job["id"], timeout=10)["status"] == "canceled"


def test_list_filters_and_cursor_pagination(client):
    tag = uuid.uuid4().hex
    ids = [submit(client, "echo", {"tag": tag, "i": i})["id"] for i in range(5)]
    for job_id in ids:
        wait_for(client, job_id)
    seen, cursor = [], None
    while True:
        params = {"model": "echo", "status": "succeeded", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/jobs", params=params).json()
        assert len(page["data"]) <= 2
        seen += [j["id"] for j in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert set(ids) <= set(seen)
    assert seen == sorted(seen, reverse=True)  # newest first, no duplicates across pages
    assert len(seen) == len(set(seen))
    failed_only = client.get("/v1/jobs", params={"status": "failed"}).json()["data"]
    assert all(j["status"] == "failed" for j in failed_only)
    assert_error(client.get("/v1/jobs", params={"status": "bogus"}), 422, "invalid_request")
    assert_error(client.get("/v1/jobs", params={"cursor": "%%%"}), 400, "invalid_cursor")


def test_bad_requests_get_the_error_envelope(client, app):
    assert_error(
        client.post("/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}),
        400,
        "invalid_json",
    )
    error = assert_error(client.post("/v1/jobs", json={"model": "nope"}), 404, "unknown_model")
    assert "echo" in error["details"]["available"]
    error = assert_error(
        client.post("/v1/jobs", json={"model": "sleep", "input": {"seconds": "long"}}),
        422,
        "invalid_input",
    )
    assert error["details"]["errors"][0]["loc"] == ["seconds"]
    assert_error(
        client.post("/v1/jobs", json={"model": "sleep", "input": {}}), 422, "invalid_input"
    )
    assert_error(client.post("/v1/jobs", json={"input": {}}), 422, "invalid_request")
    assert_error(
        client.post("/v1/jobs", json={"model": "echo", "priority": 1000}), 422, "invalid_request"
    )
    big = {"model": "echo", "input": {"blob": "x" * (app.settings.serve.max_body_bytes + 10)}}
    assert_error(client.post("/v1/jobs", json=big), 413, "payload_too_large")
    assert_error(client.get("/v1/jobs/job_doesnotexist"), 404, "job_not_found")
    assert_error(client.get("/v1/nowhere"), 404, "not_found")
    assert_error(client.delete("/v1/jobs"), 405, "method_not_allowed")


def _raw_post(app, headers: dict[str, str], body: bytes, wait_s: float) -> tuple[bytes, float]:
    """POST /v1/jobs announcing 1000 bytes of body and sending `body` (fewer): what comes back
    within wait_s, and after how long."""
    parts = urlsplit(app.url)
    lines = ["POST /v1/jobs HTTP/1.1", f"Host: {parts.netloc}", "Content-Length: 1000"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection((parts.hostname, parts.port), timeout=wait_s) as sock:
        started = time.monotonic()
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        answer = b""
        with contextlib.suppress(TimeoutError):
            answer = sock.recv(4096)  # the status line arrives first
            took = time.monotonic() - started
            answer = _whole_response(sock, answer)
        return answer, took if answer else time.monotonic() - started


def _whole_response(sock: socket.socket, answer: bytes = b"") -> bytes:
    """Read on from `answer` until the response's headers and its Content-Length of body are
    in (a proxy may keep the connection open after it)."""
    while b"\r\n\r\n" not in answer and (chunk := sock.recv(65536)):
        answer += chunk
    headers, _, content = answer.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", headers)
    assert length, answer[:300]
    while len(content) < int(length.group(1)) and (chunk := sock.recv(65536)):
        content += chunk
    return headers + b"\r\n\r\n" + content


def test_a_body_without_a_key_is_refused_before_it_is_read(app):
    """A client without a key sends a body a byte at a time: it used to hold a Gateway slot
    until the body was whole (1,050 such sockets took the service down)."""
    answer, took = _raw_post(app, {"content-type": "application/json"}, b"{", wait_s=10)
    assert answer.startswith(b"HTTP/1.1 401"), answer
    assert b'"unauthorized"' in answer and took < 5


def test_a_body_that_trickles_in_is_cut_off(app):
    timeout_s = app.settings.serve.body_timeout_s
    headers = {"content-type": "application/json", "X-API-Key": app.admin_key}
    answer, took = _raw_post(app, headers, b'{"model": ', wait_s=timeout_s + 10)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b'"request_timeout"' in answer and timeout_s - 0.5 < took < timeout_s + 5


def test_a_body_over_the_limit_is_answered_413_whole_after_it_is_sent(app):
    """A client that sends its whole over-limit upload reads a whole 413: the service used to
    answer and close with the body unread, the kernel reset the connection, and a client (or
    HAProxy relaying the answer) lost the 413 to "connection reset by peer"."""
    max_bytes = app.settings.serve.max_body_bytes
    body = b"\xff" * (max_bytes + 4 * 2**20)
    parts = urlsplit(app.url)
    head = (
        f"POST /v1/ingest HTTP/1.1\r\nHost: {parts.netloc}\r\nX-API-Key: {app.admin_key}\r\n"
        f"Content-Type: image/jpeg\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    for _ in range(3):
        with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
            sock.sendall(head.encode() + body)
            answer = _whole_response(sock)
        headers, _, content = answer.partition(b"\r\n\r\n")
        assert headers.startswith(b"HTTP/1.1 413"), answer[:300]
        assert json.loads(content)["error"]["code"] == "payload_too_large", answer[:300]


def test_json_busque_cannot_store_is_refused_and_nothing_is_created(client):
    """Python's json takes NaN, Infinity, lone surrogates, NUL and any nesting; such a job was
    stored, then its every read (and the tenant's list) was a 500."""
    newest = client.get("/v1/jobs", params={"limit": 1}).json()["data"]
    bodies = {
        b'{"model": "echo", "input": {"a": NaN}}': "NaN",
        b'{"model": "echo", "input": {"a": -Infinity}}': "Infinity",
        b'{"model": "echo", "input": {"a": "\\ud800"}}': "surrogate",
        b'{"model": "echo", "input": {"\\u0000": 1}}': "NUL",
        b'{"model": "echo", "input": ' + b'{"a": ' * 40 + b"1" + b"}" * 41: "nested",
        b'{"model": "echo", "input": ' + b"[" * 10000: "nested",
    }
    for body, reason in bodies.items():
        response = client.post(
            "/v1/jobs", content=body, headers={"content-type": "application/json"}
        )
        error = assert_error(response, 400, "invalid_json")
        assert reason in error["message"], error
    assert client.get("/v1/jobs", params={"limit": 1}).json()["data"] == newest


def test_job_input_is_capped_and_large_responses_pass(client, app):
    """Input over jobs.max_input_bytes is a 413 with nothing created; inputs under it are
    stored and read back, also in a page of jobs larger than gRPC's default 4 MiB message."""
    limit = app.settings.jobs.max_input_bytes
    newest = client.get("/v1/jobs", params={"limit": 1}).json()["data"]
    error = assert_error(
        client.post("/v1/jobs", json={"model": "echo", "input": {"x": "y" * limit}}),
        413,
        "payload_too_large",
    )
    assert error["details"]["max_bytes"] == limit
    assert client.get("/v1/jobs", params={"limit": 1}).json()["data"] == newest
    blob = "z" * (limit - 100)
    jobs = [submit(client, "echo", {"x": blob, "n": n}) for n in range(5)]
    for job in jobs:
        assert wait_for(client, job["id"])["status"] == "succeeded"
    response = client.get("/v1/jobs", params={"limit": 5, "model": "echo"})
    assert response.status_code == 200, response.text[:200]
    assert len(response.content) > 4 * 2**20
    assert {j["id"] for j in response.json()["data"]} == {j["id"] for j in jobs}


def test_oversized_chunked_body_is_refused(client, app):
    limit = app.settings.serve.max_body_bytes

    def chunks():
        for _ in range(limit // 1024 + 2):
            yield b"x" * 1024

    response = client.post(
        "/v1/jobs", content=chunks(), headers={"content-type": "application/json"}
    )
    error = assert_error(response, 413, "payload_too_large")
    assert error["details"] == {"max_bytes": limit}  # as when Content-Length says so


def test_a_json_route_refuses_other_content_types_and_takes_any_iso_time(client):
    body = b'{"model": "echo", "input": {}}'
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        response = client.post("/v1/jobs", content=body, headers={"content-type": content_type})
        assert_error(response, 415, "unsupported_media_type")
    for content_type in ("application/json; charset=utf-8", "application/vnd.busque+json"):
        response = client.post("/v1/jobs", content=body, headers={"content-type": content_type})
        assert response.status_code == 202, response.text
    for moment in ("0001-01-01", "2026-01-01T00:00:00Z", "2026-01-01T01:00:00+01:00"):
        response = client.get("/v1/jobs", params={"created_after": moment, "limit": 1})
        assert response.status_code == 200, response.text
    assert client.get("/v1/jobs", params={"created_after": "9999-12-31"}).json()["data"] == []
    assert_error(
        client.get("/v1/jobs", params={"created_after": "yesterday"}), 422, "invalid_request"
    )


def test_auth_is_required_and_scoped(app, client, other_tenant_key):
    with httpx.Client(base_url=app.url) as anonymous:
        assert_error(anonymous.get("/v1/jobs"), 401, "unauthorized")
        assert_error(
            anonymous.get("/v1/jobs", headers={"X-API-Key": "bq_x_y"}), 401, "unauthorized"
        )
        ok = anonymous.get("/v1/jobs", headers={"Authorization": f"Bearer {app.admin_key}"})
        assert ok.status_code == 200
    from busque.cli import _key_store

    read_only = _key_store(app.settings).create("default", "ro", ("jobs:read",)).key
    with app.client(read_only) as reader:
        assert reader.get("/v1/jobs").status_code == 200
        assert_error(reader.post("/v1/jobs", json={"model": "echo"}), 403, "forbidden")


def test_another_tenants_job_is_not_found(app, client, other_tenant_key):
    job = submit(client, "echo", {"secret": 1})
    with app.client(other_tenant_key) as other:
        assert_error(other.get(f"/v1/jobs/{job['id']}"), 404, "job_not_found")
        assert_error(other.post(f"/v1/jobs/{job['id']}/cancel"), 404, "job_not_found")
        assert_error(other.get(f"/v1/jobs/{job['id']}/events"), 404, "job_not_found")
        assert_error(other.get(f"/v1/jobs/{job['id']}/artifacts"), 404, "job_not_found")
        listed = other.get("/v1/jobs").json()["data"]
        assert job["id"] not in [j["id"] for j in listed]


def test_revoked_key_stops_working(app):
    from busque.cli import _key_store

    keys = _key_store(app.settings)
    created = keys.create("default", "short-lived")
    with app.client(created.key) as c:
        assert c.get("/v1/jobs").status_code == 200
        assert keys.revoke(created.key_id)
        time.sleep(app.settings.auth.cache_s + 0.2)
        assert_error(c.get("/v1/jobs"), 401, "unauthorized")


def test_model_catalog(client):
    models = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    echo = models["echo"]
    assert echo["available"] is True and echo["unavailable_reason"] is None
    assert echo["kind"] == "utility" and echo["resources"]["num_cpus"] > 0
    assert "seconds" in models["sleep"]["input_schema"]["properties"]
    assert client.get("/v1/models/echo").json()["id"] == "echo"
    assert_error(client.get("/v1/models/nope"), 404, "model_not_found")


def test_openapi_and_docs(app):
    with httpx.Client(base_url=app.url) as c:
        spec = c.get("/openapi.json").json()
        assert "/v1/jobs" in spec["paths"] and "/v1/jobs/{job_id}/events" in spec["paths"]
        assert c.get("/docs").status_code == 200


def test_cors_allowlist(app):
    with httpx.Client(base_url=app.url) as c:
        headers = {"Origin": "http://allowed.example", "Access-Control-Request-Method": "POST"}
        allowed = c.options("/v1/jobs", headers=headers)
        assert allowed.headers.get("access-control-allow-origin") == "http://allowed.example"
        denied = c.options("/v1/jobs", headers=headers | {"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in denied.headers
