"""Live job events end to end: SSE per job and per tenant, the WebSocket, and gRPC status."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator

import grpc
import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from busque.grpc import busque_jobs_pb2 as pb
from busque.grpc import busque_jobs_pb2_grpc as pb_grpc
from tests.conftest import wait_for
from tests.test_jobs_api import assert_error, submit

TERMINAL = ("succeeded", "failed", "canceled")


# --- helpers -----------------------------------------------------------------


def parse_sse(lines, deadline: float | None = None) -> Iterator[dict]:
    """Yield {"id", "event", "data"} per SSE message from an iterator of text lines; fail if
    the stream is still going at `deadline` (time.monotonic()), keepalives included."""
    message: dict = {}
    for line in lines:
        if deadline is not None:
            assert time.monotonic() < deadline, "the stream did not end in time"
        if line == "":
            if "data" in message:
                yield message
            message = {}
            continue
        if line.startswith(":"):  # a comment: keepalive
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "id":
            message["id"] = int(value)
        elif field == "event":
            message["event"] = value
        elif field == "data":
            message["data"] = json.loads(value)


def read_job_sse(client: httpx.Client, job_id: str, timeout: float = 30, **kwargs) -> list[dict]:
    """Read a job's SSE stream until the server ends it (fails if it does not within timeout)."""
    events = []
    deadline = time.monotonic() + timeout
    with client.stream("GET", f"/v1/jobs/{job_id}/events", timeout=timeout, **kwargs) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        events.extend(parse_sse(response.iter_lines(), deadline))
    return events


def is_terminal(message: dict) -> bool:
    return message["event"] == "job.status" and message["data"]["data"]["status"] in TERMINAL


class TenantStream:
    """A per-tenant SSE stream (`path`, by default /v1/events) read in a thread, collecting
    messages until stopped."""

    def __init__(self, app, key: str, headers: dict | None = None, path: str = "/v1/events"):
        self.client = app.client(key)
        self.headers = headers or {}
        self.path = path
        self.messages: list[dict] = []
        self.opened = threading.Event()
        self.stopped = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            with self.client.stream("GET", self.path, headers=self.headers) as response:
                assert response.status_code == 200, response.read()
                self.opened.set()
                for message in parse_sse(response.iter_lines()):
                    self.messages.append(message)
                    if self.stopped.is_set():
                        return
        except BaseException as exc:
            if not self.stopped.is_set():
                self.error = exc
        finally:
            self.opened.set()

    def __enter__(self) -> TenantStream:
        self.thread.start()
        assert self.opened.wait(20), "the tenant stream did not open"
        assert self.error is None, self.error
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.client.close()  # unblocks the reader
        self.thread.join(10)

    def wait_until(self, condition: Callable[[list[dict]], bool], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not condition(list(self.messages)):
            assert self.error is None, self.error
            assert time.monotonic() < deadline, f"condition not met; got {self.messages}"
            time.sleep(0.05)

    def job_ids(self) -> set[str]:
        return {m["data"]["job_id"] for m in self.messages}


def terminal_for(job_ids: list[str]) -> Callable[[list[dict]], bool]:
    def condition(messages: list[dict]) -> bool:
        done = {m["data"]["job_id"] for m in messages if is_terminal(m)}
        return set(job_ids) <= done

    return condition


# --- SSE per job -------------------------------------------------------------


def test_progress_job_sse_has_every_event_in_order_and_ends(client):
    job = submit(client, "progress", {"steps": 4})
    events = read_job_sse(client, job["id"])  # returns only when the server ends the stream
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    for e in events:
        assert e["data"]["id"] == e["id"]
        assert e["data"]["type"] == e["event"]
        assert e["data"]["job_id"] == job["id"]
    kinds = [
        (e["event"], e["data"]["data"].get("status"))
        if e["event"] == "job.status"
        else (e["event"], None)
        for e in events
    ]
    assert kinds == [
        ("job.status", "queued"),
        ("job.status", "running"),
        *[("job.progress", None)] * 4,
        ("job.result", None),
        ("job.status", "succeeded"),
    ]
    progress = [e["data"]["data"]["progress"] for e in events if e["event"] == "job.progress"]
    assert progress == sorted(progress) and len(set(progress)) == 4
    assert progress[-1] == 100.0
    assert events[-2]["data"]["data"] == {"result": {"steps": 4}}
    assert is_terminal(events[-1])


def test_stream_job_output_chunks_arrive_in_order(client):
    tokens = ["Hel", "lo", ", ", "wor", "ld", "!"]
    job = submit(client, "stream", {"tokens": tokens, "delay": 0.01})
    events = read_job_sse(client, job["id"])
    outputs = [e["data"]["data"] for e in events if e["event"] == "job.output"]
    assert [o["index"] for o in outputs] == list(range(len(tokens)))
    assert "".join(o["chunk"] for o in outputs) == "Hello, world!"
    result = [e for e in events if e["event"] == "job.result"]
    assert result and result[0]["data"]["data"]["result"] == {"text": "Hello, world!"}
    assert is_terminal(events[-1]) and events[-1]["data"]["data"]["status"] == "succeeded"


def test_sse_resumes_after_last_event_id_and_after_query(client):
    job = submit(client, "progress", {"steps": 4, "delay": 0.01})
    wait_for(client, job["id"])
    everything = read_job_sse(client, job["id"])
    assert len(everything) == 8
    middle = everything[3]["id"]
    later = [e["id"] for e in everything if e["id"] > middle]

    resumed = read_job_sse(client, job["id"], headers={"Last-Event-ID": str(middle)})
    assert [e["id"] for e in resumed] == later
    assert is_terminal(resumed[-1])

    by_query = read_job_sse(client, job["id"], params={"after": middle})
    assert [e["id"] for e in by_query] == later

    assert read_job_sse(client, job["id"], headers={"Last-Event-ID": "0"}) == everything


def test_sse_bad_last_event_id_is_422(client):
    job = submit(client, "echo", {"x": 1})
    response = client.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": "abc"})
    assert_error(response, 422, "invalid_request")
    assert_error(
        client.get(f"/v1/jobs/{job['id']}/events", params={"after": "-1"}), 422, "invalid_request"
    )
    assert_error(client.get("/v1/jobs/job_nope/events"), 404, "job_not_found")


def sse_response(client: httpx.Client, url: str, **kwargs) -> httpx.Response:
    """The answer to an SSE request; its body is read only when it is not a 200 stream."""
    with client.stream("GET", url, timeout=20, **kwargs) as response:
        if response.status_code != 200:
            response.read()
    return response


@pytest.mark.parametrize(
    "bad",
    [
        str(2**63),  # over the largest 64-bit event id
        str(10**30),
        "9" * 5000,  # more digits than int() takes
        "1_000",  # int() takes these, an event id is plain ASCII digits
        "+1",
        "١٢",  # Arabic-Indic digits
    ],
)
def test_sse_event_id_must_be_plain_digits_below_2_63(client, bad):
    job = submit(client, "echo", {"x": 3})
    for url in (f"/v1/jobs/{job['id']}/events", "/v1/events"):
        assert_error(sse_response(client, url, params={"after": bad}), 422, "invalid_request")
        # Header values travel as bytes; the server reads them as Latin-1.
        header = {"Last-Event-ID": bad.encode()}
        assert_error(sse_response(client, url, headers=header), 422, "invalid_request")


def test_sse_largest_event_id_is_accepted(client):
    job = submit(client, "echo", {"x": 4})
    wait_for(client, job["id"])
    largest = str(2**63 - 1)
    assert read_job_sse(client, job["id"], headers={"Last-Event-ID": largest}) == []
    with client.stream("GET", "/v1/events", headers={"Last-Event-ID": largest}) as response:
        assert response.status_code == 200


def test_sse_resuming_a_finished_job_after_its_terminal_event_ends(client):
    job = submit(client, "echo", {"x": 5})
    wait_for(client, job["id"])
    everything = read_job_sse(client, job["id"])
    assert is_terminal(everything[-1])
    last = everything[-1]["id"]
    # What a browser's EventSource sends when it reconnects after the end: nothing is left.
    for after in (last, last + 1000):
        assert (
            read_job_sse(client, job["id"], timeout=20, headers={"Last-Event-ID": str(after)}) == []
        )
        assert read_job_sse(client, job["id"], timeout=20, params={"after": after}) == []
    # Resuming before the terminal event still replays it, and ends.
    resumed = read_job_sse(client, job["id"], timeout=20, params={"after": everything[-2]["id"]})
    assert [e["id"] for e in resumed] == [last]


def test_sse_resuming_a_running_job_ends_when_it_ends(client):
    job = submit(client, "sleep", {"seconds": 2})
    with client.stream("GET", f"/v1/jobs/{job['id']}/events", timeout=30) as response:
        for message in parse_sse(response.iter_lines(), time.monotonic() + 20):
            if message["event"] == "job.status" and message["data"]["data"]["status"] == "running":
                running = message["id"]
                break
    # Resumed while the job runs: the stream waits for its later events and ends with it.
    resumed = read_job_sse(client, job["id"], headers={"Last-Event-ID": str(running)})
    assert resumed and all(e["id"] > running for e in resumed)
    assert is_terminal(resumed[-1]) and resumed[-1]["data"]["data"]["status"] == "succeeded"


def test_sse_of_another_tenants_job_is_not_found(app, client, other_tenant_key):
    job = submit(client, "echo", {"x": 2})
    with app.client(other_tenant_key) as other:
        assert_error(other.get(f"/v1/jobs/{job['id']}/events"), 404, "job_not_found")


def test_sse_delivers_the_terminal_event_live(client):
    job = submit(client, "sleep", {"seconds": 1})
    started = time.monotonic()
    with client.stream("GET", f"/v1/jobs/{job['id']}/events", timeout=30) as response:
        assert response.status_code == 200
        messages = list(parse_sse(response.iter_lines(), started + 10))
    elapsed = time.monotonic() - started
    assert is_terminal(messages[-1])
    assert messages[-1]["data"]["data"]["status"] == "succeeded"
    assert elapsed < 10, f"the stream took {elapsed:.1f}s to end"
    # The stream was opened before the job finished: its SSE stream had to wait for it live.
    assert elapsed >= 0.9
    assert any(m["event"] == "job.output" for m in messages)  # the sleep model reports its pid


# --- SSE per tenant ----------------------------------------------------------


def test_tenant_stream_sees_own_jobs_only(app, client, other_tenant_key):
    with (
        TenantStream(app, app.admin_key) as mine,
        TenantStream(app, other_tenant_key) as theirs,
    ):
        ids = [submit(client, "echo", {"i": i})["id"] for i in range(2)]
        with app.client(other_tenant_key) as other:
            their_id = submit(other, "echo", {"theirs": True})["id"]
        mine.wait_until(terminal_for(ids))
        theirs.wait_until(terminal_for([their_id]))
        for job_id in ids:
            kinds = [m["event"] for m in mine.messages if m["data"]["job_id"] == job_id]
            assert kinds[0] == "job.status" and "job.result" in kinds
        assert their_id not in mine.job_ids()
        assert not set(ids) & theirs.job_ids()
        tenant_ids = [m["id"] for m in mine.messages]
        assert tenant_ids == sorted(tenant_ids)


def test_event_ids_count_only_the_tenants_own_events(app, client):
    """Event ids are numbered per tenant: a new tenant's first job's events are 1, 2, 3... on
    SSE, and its tenant stream goes on from there, however busy the session's other tenants
    are (a global id told a tenant how many events everyone else wrote)."""
    from busque.cli import _key_store

    for n in range(3):  # another tenant keeps writing
        submit(client, "echo", {"busy": n})
    fresh = _key_store(app.settings).create(f"numbering-{time.time_ns()}", "tests").key
    with app.client(fresh) as mine:
        job = submit(mine, "echo", {"first": True})
        events = read_job_sse(mine, job["id"])
        ids = [e["id"] for e in events]
        assert ids == list(range(1, len(ids) + 1)), ids
        second = submit(mine, "echo", {"second": True})
        wait_for(mine, second["id"])
        with TenantStream(app, fresh, headers={"Last-Event-ID": str(ids[-1])}) as stream:
            stream.wait_until(terminal_for([second["id"]]))
        assert [m["id"] for m in stream.messages][0] == ids[-1] + 1


def test_tenant_stream_replays_from_last_event_id_zero(app, client):
    job = submit(client, "echo", {"replay": 1})
    wait_for(client, job["id"])
    with TenantStream(app, app.admin_key, headers={"Last-Event-ID": "0"}) as stream:
        stream.wait_until(terminal_for([job["id"]]))
    kinds = [m["event"] for m in stream.messages if m["data"]["job_id"] == job["id"]]
    assert kinds == ["job.status", "job.status", "job.result", "job.status"]


def test_a_tenant_stream_opens_with_its_resume_point_so_a_drop_before_any_event_loses_none(
    app, client
):
    with client.stream("GET", "/v1/events") as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        opener = [next(lines), next(lines)]  # the id-only message, then the blank line
    assert opener[0].startswith("id: ") and opener[1] == "", opener
    resume_at = opener[0].removeprefix("id: ")
    # Dropped before its first event; a job runs meanwhile; resuming there replays all of it.
    job = submit(client, "echo", {"gap": 1})
    wait_for(client, job["id"])
    with TenantStream(app, app.admin_key, headers={"Last-Event-ID": resume_at}) as stream:
        stream.wait_until(terminal_for([job["id"]]))
    kinds = [m["event"] for m in stream.messages if m["data"]["job_id"] == job["id"]]
    assert kinds == ["job.status", "job.status", "job.result", "job.status"]


# --- WebSocket ---------------------------------------------------------------


def ws_url(app, **query) -> str:
    url = app.url.replace("http://", "ws://") + "/v1/ws"
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def ws_receive_until(ws, condition, timeout: float = 20) -> list[dict]:
    messages = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no matching message; got {messages}"
        message = json.loads(ws.recv(timeout=left))
        if message["type"] == "ping":
            continue
        messages.append(message)
        if condition(message):
            return messages


def ws_terminal(m: dict) -> bool:
    return (
        m["type"] == "event"
        and m["event"]["type"] == "job.status"
        and m["event"]["data"]["status"] in TERMINAL
    )


def test_websocket_subscribe_streams_events_to_the_end(app, client):
    tokens = ["a", "b", "c"]
    job = submit(client, "stream", {"tokens": tokens, "delay": 0.05})
    with connect(ws_url(app), additional_headers={"X-API-Key": app.admin_key}) as ws:
        ws.send(json.dumps({"action": "subscribe", "job_ids": [job["id"]]}))
        messages = ws_receive_until(ws, ws_terminal)
    assert messages[0] == {"type": "subscribed", "job_id": job["id"]}
    events = [m["event"] for m in messages[1:]]
    assert all(m["type"] == "event" for m in messages[1:])
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    assert events[0]["type"] == "job.status" and events[0]["data"]["status"] == "queued"
    chunks = [e["data"]["chunk"] for e in events if e["type"] == "job.output"]
    assert chunks == tokens
    assert [e["data"] for e in events if e["type"] == "job.result"] == [{"result": {"text": "abc"}}]
    assert events[-1]["data"]["status"] == "succeeded"


def test_websocket_query_key_and_invalid_messages(app, client, other_tenant_key):
    job = submit(client, "echo", {"ws": 1})
    with connect(ws_url(app, api_key=app.admin_key)) as ws:
        ws.send("not json")
        [error] = ws_receive_until(ws, lambda m: True)
        assert error["type"] == "error" and error["error"]["code"] == "invalid_json"
        ws.send(json.dumps({"action": "dance", "job_ids": [job["id"]]}))
        [error] = ws_receive_until(ws, lambda m: True)
        assert error["type"] == "error" and error["error"]["code"] == "invalid_request"
        ws.send(json.dumps({"action": "subscribe", "job_ids": "not-a-list"}))
        [error] = ws_receive_until(ws, lambda m: True)
        assert error["error"]["code"] == "invalid_request"
        # The connection still works after errors.
        ws.send(json.dumps({"action": "subscribe", "job_ids": [job["id"]]}))
        [subscribed] = ws_receive_until(ws, lambda m: True)
        assert subscribed == {"type": "subscribed", "job_id": job["id"]}

    with app.client(other_tenant_key) as other:
        theirs = submit(other, "echo", {"ws": 2})
    with connect(ws_url(app), additional_headers={"X-API-Key": app.admin_key}) as ws:
        ws.send(json.dumps({"action": "subscribe", "job_ids": [theirs["id"]]}))
        [error] = ws_receive_until(ws, lambda m: True)
        assert error["type"] == "error" and error["error"]["code"] == "job_not_found"
        # Nothing of that job follows (it finishes quickly; give it a moment).
        with app.client(other_tenant_key) as other:
            wait_for(other, theirs["id"])
        with pytest.raises(TimeoutError):
            while True:
                message = json.loads(ws.recv(timeout=1))
                assert message["type"] == "ping", message


def ws_error(ws) -> dict:
    """The next message, which must be an error."""
    [message] = ws_receive_until(ws, lambda m: True)
    assert message["type"] == "error", message
    assert isinstance(message["error"]["message"], str) and message["error"]["message"]
    return message["error"]


def test_websocket_refuses_bad_last_event_id_and_stays_usable(app, client):
    job = submit(client, "echo", {"ws": 3})
    wait_for(client, job["id"])
    with connect(ws_url(app, api_key=app.admin_key)) as ws:
        for bad in (2**63, 10**30, -1, True, "5", 1.5, None):
            ws.send(
                json.dumps({"action": "subscribe", "job_ids": [job["id"]], "last_event_id": bad})
            )
            assert ws_error(ws)["code"] == "invalid_request", bad
        # The largest id is valid: subscribed, with nothing to replay.
        ws.send(
            json.dumps({"action": "subscribe", "job_ids": [job["id"]], "last_event_id": 2**63 - 1})
        )
        [subscribed] = ws_receive_until(ws, lambda m: True)
        assert subscribed == {"type": "subscribed", "job_id": job["id"]}
        ws.send(json.dumps({"action": "unsubscribe", "job_ids": [job["id"]]}))
        ws_receive_until(ws, lambda m: m["type"] == "unsubscribed")
        ws.send(json.dumps({"action": "subscribe", "job_ids": [job["id"]], "last_event_id": 0}))
        messages = ws_receive_until(ws, ws_terminal)
    assert messages[0] == {"type": "subscribed", "job_id": job["id"]}
    assert [m["event"]["type"] for m in messages[1:]] == [
        "job.status",
        "job.status",
        "job.result",
        "job.status",
    ]


def test_websocket_refuses_json_busque_does_not_take_and_stays_usable(app, client):
    job = submit(client, "echo", {"ws": 4})
    with connect(ws_url(app, api_key=app.admin_key)) as ws:
        for frame in (
            "[" * 10_000,  # deeper than Python's recursion limit
            '{"a":' * 10_000,
            "[" * 40 + "]" * 40,  # valid JSON, deeper than busque takes
            '{"action": "subscribe", "job_ids": [], "last_event_id": NaN}',
            "Infinity",
            '{"action": "subscribe", "job_ids": ["\\ud800"]}',
            '{"action": "subscribe", "job_ids": ["a\\u0000"]}',
            b'{"action": "subscribe", "job_ids": []}',  # a binary frame
        ):
            ws.send(frame)
            assert ws_error(ws)["code"] == "invalid_json", frame[:40]
        ws.send(json.dumps({"action": "subscribe", "job_ids": [job["id"]]}))
        messages = ws_receive_until(ws, ws_terminal)
    assert messages[0] == {"type": "subscribed", "job_id": job["id"]}


def test_websocket_caps_the_jobs_a_connection_follows(app, client):
    job = submit(client, "echo", {"ws": 5})
    fakes = [f"job_nope{i}" for i in range(5000)]
    with connect(ws_url(app, api_key=app.admin_key)) as ws:
        ws.send(json.dumps({"action": "subscribe", "job_ids": fakes}))
        error = ws_error(ws)
        assert error["code"] == "invalid_request" and "1000" in error["message"]
        ws.send(json.dumps({"action": "subscribe", "job_ids": [job["id"]]}))
        ws_receive_until(ws, ws_terminal)
        # One job followed: 1000 more would be 1001, refused before any is looked up.
        ws.send(json.dumps({"action": "subscribe", "job_ids": fakes[:1000]}))
        assert ws_error(ws)["code"] == "invalid_request"
        # Unsubscribed, the same 1000 fit (each is then answered on its own).
        ws.send(json.dumps({"action": "unsubscribe", "job_ids": [job["id"]]}))
        ws_receive_until(ws, lambda m: m["type"] == "unsubscribed")
        ws.send(json.dumps({"action": "subscribe", "job_ids": [*fakes[:999], job["id"]]}))
        messages = ws_receive_until(ws, lambda m: m["type"] == "subscribed", timeout=60)
    errors = [m for m in messages if m["type"] == "error"]
    assert len(errors) == 999 and all(e["error"]["code"] == "job_not_found" for e in errors)


def test_websocket_refuses_a_message_repeating_one_job_at_once(app, client):
    """20,000 copies of one id cost over a minute of database work, one query each."""
    job = submit(client, "echo", {"ws": 6})
    with connect(ws_url(app, api_key=app.admin_key)) as ws:
        started = time.monotonic()
        ws.send(json.dumps({"action": "subscribe", "job_ids": [job["id"]] * 20_000}))
        error = ws_error(ws)
        assert error["code"] == "invalid_request" and "1000 job ids" in error["message"]
        assert time.monotonic() - started < 5
        ws.send(json.dumps({"action": "subscribe", "job_ids": [job["id"]] * 3}))
        messages = ws_receive_until(ws, ws_terminal)
    assert len([m for m in messages if m["type"] == "subscribed"]) == 1  # once, not 3 times


def test_a_tenant_holding_its_streams_is_refused_more_and_others_are_not(
    app, client, other_tenant_key
):
    """One tenant opens as many event streams as it may (per Gateway replica: the session has
    one): the next SSE stream is a 429 with Retry-After, the next WebSocket closes with 4429;
    another tenant still streams and submits; closing one stream frees its slot."""
    import contextlib

    limit = app.settings.events.max_streams_per_tenant
    with contextlib.ExitStack() as held, app.client(other_tenant_key) as noisy:
        for _ in range(limit):
            stream = held.enter_context(noisy.stream("GET", "/v1/events", timeout=30))
            assert stream.status_code == 200
        refused = noisy.get("/v1/events")
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "too_many_streams"
        assert refused.headers["retry-after"] == "5"
        with (
            connect(ws_url(app, api_key=other_tenant_key)) as ws,
            pytest.raises(ConnectionClosed) as closed,
        ):
            ws.recv(timeout=10)
        assert closed.value.rcvd.code == 4429
        # Another tenant is not held up.
        job = submit(client, "echo", {"streams": 1})
        events = read_job_sse(client, job["id"], timeout=30)
        assert [e for e in events if e["event"] == "job.result"]
        held.close()  # every stream of the noisy tenant ends
        deadline = time.monotonic() + 10
        while (again := noisy.get("/v1/jobs/x/events")).status_code == 429:
            assert time.monotonic() < deadline, "the slots never came back"
            time.sleep(0.2)
        assert again.status_code == 404  # past the limit check: the job does not exist


def test_websocket_bad_key_closes_with_4401(app):
    for kwargs in (
        {"uri": ws_url(app), "additional_headers": {"X-API-Key": "bq_bad_key"}},
        {"uri": ws_url(app, api_key="bq_bad_key")},
        {"uri": ws_url(app)},
    ):
        with (
            pytest.raises((ConnectionClosed, InvalidStatus)) as caught,
            connect(**kwargs, open_timeout=20) as ws,
        ):
            ws.recv(timeout=20)
        assert isinstance(caught.value, ConnectionClosed), caught.value
        assert caught.value.rcvd is not None and caught.value.rcvd.code == 4401


def test_websocket_key_without_read_scope_closes_with_4403(app):
    from busque.cli import _key_store

    write_only = _key_store(app.settings).create("default", "wo", ("jobs:write",)).key
    with (
        pytest.raises(ConnectionClosed) as caught,
        connect(ws_url(app, api_key=write_only), open_timeout=20) as ws,
    ):
        ws.recv(timeout=20)
    assert caught.value.rcvd is not None and caught.value.rcvd.code == 4403


# --- gRPC --------------------------------------------------------------------


@pytest.fixture(scope="module")
def stub(app):
    with grpc.insecure_channel(app.grpc_target) as channel:
        yield pb_grpc.JobServiceStub(channel)


def test_grpc_get_status_waits_for_the_job(app, client, stub):
    job = submit(client, "sleep", {"seconds": 1})
    key = [("x-api-key", app.admin_key)]
    now = stub.GetStatus(pb.GetStatusRequest(job_id=job["id"]), metadata=key, timeout=20)
    assert now.job_id == job["id"] and now.status in ("queued", "running")
    started = time.monotonic()
    done = stub.GetStatus(
        pb.GetStatusRequest(job_id=job["id"], wait_seconds=20), metadata=key, timeout=30
    )
    assert time.monotonic() - started < 15
    assert done.status == "succeeded"
    assert done.model == "sleep" and done.attempts == 1 and done.progress == 100.0
    assert json.loads(done.result_json)["slept"] == 1
    assert done.finished_at and done.error_code == ""


def test_grpc_errors(app, client, stub, other_tenant_key):
    job = submit(client, "echo", {"grpc": 1})
    request = pb.GetStatusRequest(job_id=job["id"])
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetStatus(
            pb.GetStatusRequest(job_id="job_nope"),
            metadata=[("x-api-key", app.admin_key)],
            timeout=20,
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetStatus(request, timeout=20)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetStatus(request, metadata=[("x-api-key", "bq_bad_key")], timeout=20)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetStatus(request, metadata=[("x-api-key", other_tenant_key)], timeout=20)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        list(
            stub.StreamStatus(
                pb.StreamStatusRequest(job_id=job["id"]),
                metadata=[("x-api-key", other_tenant_key)],
                timeout=20,
            )
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    # A long id is refused, not echoed into details (metadata, which clients cap at 8 KiB).
    key = [("x-api-key", app.admin_key)]
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetStatus(pb.GetStatusRequest(job_id="j" * 15000), metadata=key, timeout=20)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value
    with pytest.raises(grpc.RpcError) as caught:
        list(
            stub.StreamStatus(pb.StreamStatusRequest(job_id="j" * 15000), metadata=key, timeout=20)
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value
    # The owner still sees it, with the bearer form of the key too.
    ok = stub.GetStatus(
        request, metadata=[("authorization", f"Bearer {app.admin_key}")], timeout=20
    )
    assert ok.job_id == job["id"]


def test_grpc_stream_status_of_a_progress_job(app, client, stub):
    job = submit(client, "progress", {"steps": 3, "delay": 0.1})
    stream = stub.StreamStatus(
        pb.StreamStatusRequest(job_id=job["id"]),
        metadata=[("x-api-key", app.admin_key)],
        timeout=30,
    )
    events = list(stream)  # ends by itself after the terminal status
    assert all(e.job_id == job["id"] for e in events)
    ids = [e.id for e in events]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    types = [e.type for e in events]
    assert types == ["job.status", "job.status", *["job.progress"] * 3, "job.result", "job.status"]
    data = [json.loads(e.data_json) for e in events]
    assert [d["status"] for d in data if "status" in d] == ["queued", "running", "succeeded"]
    assert data[-2] == {"result": {"steps": 3}}

    # Resuming after the middle replays only the later events, and ends too.
    middle = events[3].id
    resumed = list(
        stub.StreamStatus(
            pb.StreamStatusRequest(job_id=job["id"], last_event_id=middle),
            metadata=[("x-api-key", app.admin_key)],
            timeout=30,
        )
    )
    assert [e.id for e in resumed] == [i for i in ids if i > middle]


# --- long histories ----------------------------------------------------------


@pytest.fixture(scope="module")
def long_job(app):
    """A finished job with more stored events than one page of the store (1000)."""
    with app.client() as c:
        tokens = [f"t{i} " for i in range(1000)]
        job = submit(c, "stream", {"tokens": tokens, "delay": 0})
        assert wait_for(c, job["id"], timeout=60)["status"] == "succeeded"
        return job["id"], tokens


def test_sse_replays_a_long_history_completely_and_ends(client, long_job):
    job_id, tokens = long_job
    events = read_job_sse(client, job_id)
    assert len(events) == len(tokens) + 4  # queued, running, outputs, result, succeeded
    outputs = [e["data"]["data"] for e in events if e["event"] == "job.output"]
    assert [o["index"] for o in outputs] == list(range(len(tokens)))
    assert is_terminal(events[-1])
    resumed = read_job_sse(client, job_id, headers={"Last-Event-ID": str(events[1]["id"])})
    assert [e["id"] for e in resumed] == [e["id"] for e in events[2:]]


def test_websocket_replays_a_long_history_completely(app, long_job):
    job_id, tokens = long_job
    with connect(ws_url(app, api_key=app.admin_key)) as ws:
        ws.send(json.dumps({"action": "subscribe", "job_ids": [job_id]}))
        messages = ws_receive_until(ws, ws_terminal)
    events = [m["event"] for m in messages if m["type"] == "event"]
    assert len(events) == len(tokens) + 4
    assert "".join(e["data"]["chunk"] for e in events if e["type"] == "job.output") == "".join(
        tokens
    )
