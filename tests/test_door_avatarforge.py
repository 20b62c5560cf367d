"""AvatarForge's door through the real server, as its clients use it: a multipart photo with a
callbackUrl -> 202 + Location; the status polled and long-polled; the customer's SSE stream; the
signed webhook with the ProfilePhotoJobStatus JSON on DONE and on FAILED; gRPC GetStatus and
StreamStatus with the document's own proto; the customers; and bad input refused with nothing
left behind. The avatars come from the tiny Stable Diffusion pipeline the session builds."""

from __future__ import annotations

import io
import json
import re
import time
from contextlib import closing

import grpc
import httpx
import pytest
from PIL import Image

from busque.grpc import profile_photo_job_pb2 as pb
from busque.grpc import profile_photo_job_pb2_grpc as pb_grpc
from busque.jobs.webhooks import verify
from busque.runtime import Runtime
from tests.face_photos import astronaut, encode
from tests.test_events import TenantStream
from tests.test_quotas import tenant_key
from tests.test_webhooks_e2e import Receiver, poll

LOCATION = re.compile(r"^/customers/(?P<customer>[^/]+)/photos/(?P<job>[^/]+)/status$")
FIELDS = {
    "jobId",
    "customerId",
    "status",
    "originalPhotoUrl",
    "generatedPhotoUrl",
    "error",
    "createdAt",
    "updatedAt",
}


@pytest.fixture(scope="module")
def receiver():
    with closing(Receiver()) as running:
        yield running


@pytest.fixture(scope="module")
def photo() -> bytes:
    return encode(astronaut().resize((96, 96)), quality=90)


@pytest.fixture
def customer(request) -> str:
    return f"cust-{abs(hash(request.node.name)) % 10**8}"


def send(client, customer: str, data: bytes, **fields) -> httpx.Response:
    return client.post(
        f"/customers/{customer}", files={"photo": ("me.jpg", data, "image/jpeg")}, data=fields
    )


def accepted(client, customer: str, data: bytes, **fields) -> dict:
    response = send(client, customer, data, **fields)
    assert response.status_code == 202, response.text
    where = LOCATION.match(response.headers["location"])
    assert where and where["customer"] == customer
    status = response.json()
    assert set(status) == FIELDS and status["jobId"] == where["job"]
    assert status["customerId"] == customer and status["status"] in ("PENDING", "PROCESSING")
    return status


def test_photo_to_avatar_polled_long_polled_and_webhooked(app, client, receiver, photo, customer):
    secret = client.get("/v1/me").json()["webhook_secret"]
    hook = receiver.url()
    status = accepted(client, customer, photo, callbackUrl=hook)
    # The original is the photo sent, behind a presigned URL.
    assert httpx.get(status["originalPhotoUrl"], timeout=30).content == photo
    location = f"/customers/{customer}/photos/{status['jobId']}/status"
    polled = client.get(location).json()
    assert polled["jobId"] == status["jobId"] and polled["status"] != "FAILED"
    started = time.monotonic()
    done = client.get(location, params={"waitSeconds": 60}).json()
    assert done["status"] == "DONE", done
    assert time.monotonic() - started < 60 and done["error"] is None
    avatar = httpx.get(done["generatedPhotoUrl"], timeout=30)
    assert Image.open(io.BytesIO(avatar.content)).size == (64, 64)
    assert done["createdAt"].endswith("Z") and done["updatedAt"] >= done["createdAt"]
    # One webhook, on DONE, signed as busque signs webhooks, with the ProfilePhotoJobStatus.
    (request,) = poll(lambda: receiver.received(hook), lambda got: len(got) == 1)
    verify(secret, request["headers"], request["body"])
    sent = json.loads(request["body"])
    assert set(sent) == FIELDS and sent["status"] == "DONE" and sent["jobId"] == status["jobId"]
    assert httpx.get(sent["generatedPhotoUrl"], timeout=30).content == avatar.content
    time.sleep(1)
    assert len(receiver.received(hook)) == 1  # PENDING and PROCESSING send nothing
    # The customer and their photos.
    me = client.get(f"/customers/{customer}").json()
    assert me["customerId"] == customer and len(me["photos"]) == 1
    assert httpx.get(me["photos"][0], timeout=30).content == avatar.content
    listed = {c["customerId"]: c for c in client.get("/customers").json()}
    assert len(listed[customer]["photos"]) == 1
    assert client.get("/customers/nobody-like-this").status_code == 404
    assert client.get(f"/customers/someone-else/photos/{status['jobId']}/status").status_code == 404


def test_a_failed_job_reads_failed_with_its_error_and_calls_back(app, receiver, photo, customer):
    """A tenant that runs one job at a time: while a sleeper runs, the photo's job waits, and
    canceling it fails it (FAILED, with the reason) and sends the webhook."""
    key = tenant_key(app, "one-at-a-time")
    hook = receiver.url()
    with app.client(key) as client:
        secret = client.get("/v1/me").json()["webhook_secret"]
        sleeper = client.post("/v1/jobs", json={"model": "sleep", "input": {"seconds": 60}}).json()
        poll(lambda: client.get(f"/v1/jobs/{sleeper['id']}").json()["status"], "running".__eq__)
        status = accepted(client, customer, photo, callbackUrl=hook)
        assert status["status"] == "PENDING"
        assert client.post(f"/v1/jobs/{status['jobId']}/cancel").status_code == 200
        client.post(f"/v1/jobs/{sleeper['id']}/cancel")
        failed = client.get(f"/customers/{customer}/photos/{status['jobId']}/status").json()
        assert failed["status"] == "FAILED" and failed["error"] and not failed["generatedPhotoUrl"]
        (request,) = poll(lambda: receiver.received(hook), lambda got: len(got) == 1)
        verify(secret, request["headers"], request["body"])
        assert json.loads(request["body"])["status"] == "FAILED"
        assert client.get(f"/customers/{customer}").json()["photos"] == []


def test_the_customer_stream_sends_each_change_of_its_jobs_only(app, client, photo, customer):
    stream_path = f"/customers/{customer}/photos/stream"
    with TenantStream(app, app.admin_key, path=stream_path) as stream:
        accepted(client, customer + "-other", photo)
        mine = accepted(client, customer, photo)
        stream.wait_until(lambda got: any(m["data"]["status"] == "DONE" for m in got), timeout=120)
    assert {m["data"]["jobId"] for m in stream.messages} == {mine["jobId"]}
    statuses = [m["data"]["status"] for m in stream.messages]
    assert statuses[-1] == "DONE" and "PROCESSING" in statuses
    assert set(stream.messages[-1]["data"]) == FIELDS


def test_grpc_get_status_and_stream_status_with_the_documents_proto(
    app, client, photo, customer, other_tenant_key
):
    key = [("x-api-key", app.admin_key)]
    with grpc.insecure_channel(app.grpc_target) as channel:
        stub = pb_grpc.ProfilePhotoJobGrpcStub(channel)
        job = accepted(client, customer, photo)["jobId"]
        stream = stub.StreamStatus(
            pb.StatusStreamRequest(customer_id=customer, job_id=job), metadata=key, timeout=120
        )
        updates = list(stream)  # the current status first; ends once the job is DONE
        assert updates[0].job_id == job and updates[-1].status == pb.STATUS_DONE
        assert updates[-1].customer_id == customer and updates[-1].generated_photo_url
        second = accepted(client, customer, photo)["jobId"]
        answer = stub.GetStatus(
            pb.JobStatusRequest(job_id=second, wait_seconds=60), metadata=key, timeout=90
        )
        assert answer.status == pb.STATUS_DONE and answer.job_id == second
        assert answer.created_at.seconds > 0 and answer.updated_at.ToDatetime()
        avatar = httpx.get(answer.generated_photo_url, timeout=30).content
        assert Image.open(io.BytesIO(avatar)).size == (64, 64)
        assert stub.GetStatus(pb.JobStatusRequest(job_id=job), metadata=key).status == 2

        def refused(call, request, metadata) -> grpc.StatusCode:
            with pytest.raises(grpc.RpcError) as error:
                result = call(request, metadata=metadata, timeout=30)
                list(result) if not isinstance(result, pb.JobStatusResponse) else None
            return error.value.code()

        foreign = [("x-api-key", other_tenant_key)]
        plain = client.post("/v1/jobs", json={"model": "echo", "input": {}}).json()["id"]
        for call, request, metadata, code in (
            (stub.GetStatus, pb.JobStatusRequest(job_id=job), foreign, "NOT_FOUND"),
            (stub.GetStatus, pb.JobStatusRequest(job_id=plain), key, "NOT_FOUND"),
            (stub.GetStatus, pb.JobStatusRequest(job_id=job), [], "UNAUTHENTICATED"),
            (stub.StreamStatus, pb.StatusStreamRequest(job_id=job), key, "INVALID_ARGUMENT"),
            (
                stub.StreamStatus,
                pb.StatusStreamRequest(customer_id="else", job_id=job),
                key,
                "NOT_FOUND",
            ),
            (
                stub.StreamStatus,
                pb.StatusStreamRequest(customer_id=customer, job_id=job),
                foreign,
                "NOT_FOUND",
            ),
        ):
            assert refused(call, request, metadata) == getattr(grpc.StatusCode, code), request


def uploads_of(app, client) -> set[str]:
    tenant = client.get("/v1/me").json()["tenant_id"]
    return {info.key for info in Runtime(app.settings).objects.list(f"{tenant}/uploads/")}


def test_bad_input_is_refused_and_leaves_nothing(app, client, photo, customer, other_tenant_key):
    before = uploads_of(app, client)
    jobs_before = client.get("/v1/jobs", params={"label": "door=avatarforge"}).json()["data"]
    for response, status, code in (
        (send(client, customer, b"not an image at all"), 422, None),
        (send(client, customer, photo, callbackUrl="http://10.1.2.3/hook"), 422, "invalid_webhook"),
        (send(client, customer, photo, callbackUrl="ftp://x"), 422, "invalid_webhook"),
        (send(client, customer, photo, style="cubism"), 422, "invalid_input"),
        (client.post(f"/customers/{customer}", data={"photo": "text"}), 422, "invalid_request"),
        (send(client, "x" * 300, photo), 422, "invalid_request"),
    ):
        assert response.status_code == status, response.text
        assert "error" in response.json(), response.text
        if code:
            assert response.json()["error"]["code"] == code, response.text
    assert uploads_of(app, client) == before
    after = client.get("/v1/jobs", params={"label": "door=avatarforge"}).json()["data"]
    assert after == jobs_before
    with httpx.Client(base_url=app.url, timeout=30) as keyless:
        assert send(keyless, customer, photo).status_code == 401
        assert keyless.get("/customers").status_code == 401
    mine = accepted(client, customer, photo)
    with app.client(other_tenant_key) as other:
        assert other.get(f"/customers/{customer}/photos/{mine['jobId']}/status").status_code == 404
        assert other.get(f"/customers/{customer}").status_code == 404
        assert customer not in {c["customerId"] for c in other.get("/customers").json()}
    bad_wait = client.get(
        f"/customers/{customer}/photos/{mine['jobId']}/status", params={"waitSeconds": "-1"}
    )
    assert bad_wait.status_code == 422 and "error" in bad_wait.json()
