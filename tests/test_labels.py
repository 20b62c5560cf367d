"""Job labels through the real server: set at creation, shown on the job, and every way of
finding or following jobs filters by them (the list, the tenant's SSE stream, the WebSocket,
gRPC StreamStatus) without ever reaching another tenant's jobs that carry the same labels."""

from __future__ import annotations

import json
import queue
import threading

import grpc
import pytest
from websockets.sync.client import connect

from busque.grpc import busque_jobs_pb2 as pb
from busque.grpc import busque_jobs_pb2_grpc as pb_grpc
from tests.conftest import wait_for
from tests.test_events import TenantStream, terminal_for, ws_receive_until, ws_terminal, ws_url
from tests.test_jobs_api import assert_error


def labelled(client, labels: dict, **inputs) -> dict:
    response = client.post("/v1/jobs", json={"model": "echo", "input": inputs, "labels": labels})
    assert response.status_code == 202, response.text
    return response.json()


@pytest.fixture
def customer(request) -> str:
    return f"c-{abs(hash(request.node.name)) % 10**8}"  # a label value no other test uses


def test_labels_are_kept_and_filter_the_list(client, app, other_tenant_key, customer):
    mine = labelled(client, {"customer": customer, "plan": "pro"}, n=1)
    assert mine["labels"] == {"customer": customer, "plan": "pro"}
    labelled(client, {"customer": customer + "-other"}, n=2)
    with app.client(other_tenant_key) as other:
        theirs = labelled(other, {"customer": customer}, n=3)
        assert [
            j["id"]
            for j in other.get("/v1/jobs", params={"label": f"customer={customer}"}).json()["data"]
        ] == [theirs["id"]]
    listed = client.get("/v1/jobs", params={"label": f"customer={customer}"}).json()["data"]
    assert [j["id"] for j in listed] == [mine["id"]]
    both = client.get(
        "/v1/jobs", params=[("label", f"customer={customer}"), ("label", "plan=pro")]
    ).json()["data"]
    assert [j["id"] for j in both] == [mine["id"]]
    none = client.get(
        "/v1/jobs", params=[("label", f"customer={customer}"), ("label", "plan=free")]
    ).json()["data"]
    assert none == []
    assert client.get(f"/v1/jobs/{mine['id']}").json()["labels"] == mine["labels"]
    assert labelled(client, {}, n=4)["labels"] == {}


def test_bad_labels_are_refused_and_nothing_is_created(client):
    def newest():
        return [j["id"] for j in client.get("/v1/jobs", params={"limit": 1}).json()["data"]]

    before = newest()
    for labels in (
        {"Customer": "1"},  # keys are lower-case
        {"": "1"},
        {f"k{n}": "v" for n in range(17)},  # at most 16
        {"customer": "x" * 257},
    ):
        response = client.post("/v1/jobs", json={"model": "echo", "labels": labels})
        assert_error(response, 422, "invalid_labels")
    assert_error(
        client.post("/v1/jobs", json={"model": "echo", "labels": {"customer": 7}}),
        422,
        "invalid_request",
    )
    assert newest() == before
    assert_error(client.get("/v1/jobs", params={"label": "customer"}), 422, "invalid_labels")
    assert_error(client.get("/v1/events", params={"label": "UPPER=1"}), 422, "invalid_labels")


def test_an_idempotent_replay_with_other_labels_is_a_conflict(client, customer):
    key = {"Idempotency-Key": f"labels-{customer}"}
    body = {"model": "echo", "input": {"x": 1}, "labels": {"customer": customer}}
    first = client.post("/v1/jobs", json=body, headers=key)
    assert client.post("/v1/jobs", json=body, headers=key).json()["id"] == first.json()["id"]
    body["labels"] = {"customer": customer + "-2"}
    assert_error(client.post("/v1/jobs", json=body, headers=key), 409, "idempotency_conflict")


def test_the_tenant_stream_follows_only_its_jobs_with_the_labels(
    app, client, other_tenant_key, customer
):
    with TenantStream(app, app.admin_key) as everything:
        stream = TenantStream(app, app.admin_key)
        stream.client.params = {"label": f"customer={customer}"}
        with stream:
            wanted = labelled(client, {"customer": customer}, n=1)
            unwanted = labelled(client, {"customer": customer + "-no"}, n=2)
            with app.client(other_tenant_key) as other:
                foreign = labelled(other, {"customer": customer}, n=3)
                wait_for(other, foreign["id"])
            stream.wait_until(terminal_for([wanted["id"]]))
            everything.wait_until(terminal_for([wanted["id"], unwanted["id"]]))
        assert stream.job_ids() == {wanted["id"]}
        assert all(m["data"]["labels"] == {"customer": customer} for m in stream.messages)
    # Resuming from before the jobs replays the labelled job's events only.
    first = min(m["id"] for m in stream.messages)
    resumed = TenantStream(app, app.admin_key, headers={"Last-Event-ID": str(first - 1)})
    resumed.client.params = {"label": f"customer={customer}"}
    with resumed:
        resumed.wait_until(terminal_for([wanted["id"]]))
    assert resumed.job_ids() == {wanted["id"]}


def test_the_websocket_follows_new_jobs_by_label(app, client, other_tenant_key, customer):
    with connect(ws_url(app), additional_headers={"X-API-Key": app.admin_key}) as ws:
        ws.send(json.dumps({"action": "subscribe", "labels": {"customer": customer}}))
        [subscribed] = ws_receive_until(ws, lambda m: True)
        assert subscribed == {"type": "subscribed", "labels": {"customer": customer}}
        with app.client(other_tenant_key) as other:
            foreign = labelled(other, {"customer": customer}, n=0)
            wait_for(other, foreign["id"])
        labelled(client, {"customer": customer + "-no"}, n=1)
        wanted = labelled(client, {"customer": customer}, n=2)
        messages = ws_receive_until(ws, ws_terminal)
        assert {m["event"]["job_id"] for m in messages} == {wanted["id"]}
        ws.send(json.dumps({"action": "subscribe", "labels": {"customer": 1}}))
        [error] = ws_receive_until(ws, lambda m: True)
        assert error["error"]["code"] == "invalid_labels"
        ws.send(json.dumps({"action": "unsubscribe", "labels": {"customer": customer}}))
        [gone] = ws_receive_until(ws, lambda m: True)
        assert gone == {"type": "unsubscribed", "labels": {"customer": customer}}
    # On a new connection, with last_event_id, the labelled jobs' past comes first.
    with connect(ws_url(app), additional_headers={"X-API-Key": app.admin_key}) as ws:
        ws.send(
            json.dumps(
                {"action": "subscribe", "labels": {"customer": customer}, "last_event_id": 0}
            )
        )
        replayed = ws_receive_until(ws, ws_terminal)
        assert {m["event"]["job_id"] for m in replayed[1:]} == {wanted["id"]}


def test_grpc_streams_the_tenants_jobs_by_label(app, client, other_tenant_key, customer):
    key = [("x-api-key", app.admin_key)]
    received: queue.Queue = queue.Queue()
    with grpc.insecure_channel(app.grpc_target) as channel:
        stub = pb_grpc.JobServiceStub(channel)
        stream = stub.StreamStatus(
            pb.StreamStatusRequest(labels={"customer": customer}), metadata=key, timeout=60
        )

        def read():
            try:
                for event in stream:
                    received.put(event)
            except grpc.RpcError as exc:
                received.put(exc)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        with app.client(other_tenant_key) as other:
            foreign = labelled(other, {"customer": customer}, n=0)
            wait_for(other, foreign["id"])
        labelled(client, {"customer": customer + "-no"}, n=1)
        wanted = labelled(client, {"customer": customer}, n=2)
        events = []
        while not (events and json.loads(events[-1].data_json).get("status") == "succeeded"):
            event = received.get(timeout=30)
            assert not isinstance(event, grpc.RpcError), event
            events.append(event)
        stream.cancel()
        assert {e.job_id for e in events} == {wanted["id"]}
        # One job with labels it does not have: not found.
        with pytest.raises(grpc.RpcError) as refused:
            list(
                stub.StreamStatus(
                    pb.StreamStatusRequest(job_id=wanted["id"], labels={"customer": "nobody"}),
                    metadata=key,
                    timeout=20,
                )
            )
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
