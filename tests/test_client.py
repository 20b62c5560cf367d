"""busque.client (sync and async) against the real server: configuration, idempotent creates
retried through connection errors and 429s, waiting, failures as exceptions, artifacts, an
event stream cut in the middle and resumed, presigned upload + ingest + search, webhooks."""

from __future__ import annotations

import asyncio
import io
import threading
import time
import uuid

import httpx
import pytest
import skimage.data
from PIL import Image

from busque.client import (
    AsyncClient,
    Client,
    Conflict,
    ConnectionFailed,
    InvalidRequest,
    Job,
    JobFailed,
    Match,
    NotFound,
    RetryPolicy,
    SearchResult,
    Unauthorized,
    WaitTimeout,
    WebhookVerificationError,
    verify_webhook,
)
from busque.client.sse import EventStream
from busque.client.transport import Call
from busque.testing.tcp_proxy import TcpProxy
from tests.test_quotas import tenant_key


def jpeg(name: str, note: str = "", size: int = 384, quality: int = 90) -> bytes:
    """A real photo from scikit-image as JPEG; `note` (a JPEG comment) makes bytes no other
    test ingests."""
    image = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
    image.thumbnail((size, size))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, comment=note.encode())
    return out.getvalue()


@pytest.fixture
def busque(app):
    with Client(app.url, app.admin_key) as client:
        yield client


@pytest.fixture
def proxy(app):
    """The app behind a TCP proxy a test can cut (connections reset, new ones refused) and
    restore."""
    host, port = httpx.URL(app.url).host, httpx.URL(app.url).port
    tcp = TcpProxy(host, port)
    yield tcp
    tcp.close()


def counting_http(counts: dict[str, int]) -> httpx.Client:
    """An httpx.Client that counts the requests it sends and the 429s it receives."""

    def request(req: httpx.Request) -> None:
        counts["sent"] = counts.get("sent", 0) + 1

    def response(resp: httpx.Response) -> None:
        counts[str(resp.status_code)] = counts.get(str(resp.status_code), 0) + 1

    return httpx.Client(timeout=30, event_hooks={"request": [request], "response": [response]})


def test_url_and_key_come_from_arguments_then_environment_then_the_key_file(monkeypatch, tmp_path):
    monkeypatch.delenv("BUSQUE_URL", raising=False)
    monkeypatch.delenv("BUSQUE_API_KEY", raising=False)
    monkeypatch.delenv("BUSQUE_HOME", raising=False)
    monkeypatch.delenv("BUSQUE_AUTH__DEV_KEY_FILE", raising=False)
    (tmp_path / ".busque").mkdir()
    (tmp_path / ".busque" / "admin.key").write_text("bq_from_file\n")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")  # the key file is found in a folder above
    with Client() as client:
        assert client.config.base_url == "http://127.0.0.1:8000"
        assert client.config.api_key == "bq_from_file"
        assert "bq_from_file" not in repr(client.config)
    monkeypatch.setenv("BUSQUE_URL", "http://busque.example:9000/")
    monkeypatch.setenv("BUSQUE_API_KEY", "bq_from_env")
    with Client() as client:
        assert client.config.base_url == "http://busque.example:9000"
        assert client.config.api_key == "bq_from_env"
    with Client("http://explicit:1", "bq_explicit") as client:
        assert (client.config.base_url, client.config.api_key) == (
            "http://explicit:1",
            "bq_explicit",
        )
    monkeypatch.setenv("BUSQUE_HOME", str(tmp_path / "elsewhere"))
    monkeypatch.delenv("BUSQUE_API_KEY")
    with Client() as client:
        assert client.config.api_key is None  # no key file under $BUSQUE_HOME
    monkeypatch.setenv("BUSQUE_AUTH__DEV_KEY_FILE", str(tmp_path / ".busque" / "admin.key"))
    with Client() as client:  # the server's own setting for the file
        assert client.config.api_key == "bq_from_file"


def test_results_keep_the_fields_the_client_does_not_know():
    job = Job.from_dict({"id": "job_1", "status": "queued", "queue_position": 3})
    assert (job.id, job.status, job.done) == ("job_1", "queued", False)
    assert job.queue_position == 3 and job["queue_position"] == 3 and job.raw["queue_position"] == 3
    with pytest.raises(AttributeError):
        job.no_such_field  # noqa: B018
    found = SearchResult.from_dict(
        {"matches": [{"rank": 1, "media_id": "m", "score": 0.5, "x": 1}]}
    )
    assert isinstance(found.matches[0], Match) and found.matches[0].x == 1


def test_an_id_only_message_sets_where_a_stream_resumes_and_is_no_event():
    """busque's tenant stream opens with one (tests/test_events.py), as the SSE standard
    allows: a drop before the first event then resumes there."""
    stream = EventStream("/v1/events", stop_at_terminal=False)
    seen = [event for line in ["id: 41", "", ": keepalive", ""] for event in stream.lines(line)]
    assert seen == [] and stream.last_event_id == 41
    assert stream.call().headers["Last-Event-ID"] == "41"


def test_what_is_sent_again():
    """Nothing reached the server, or it refused (429/503, after its Retry-After): sent again.
    A connection broken after the request went out: only a call that is safe to repeat."""
    policy = RetryPolicy(max_retries=2, backoff_s=0.1, max_delay_s=5)
    post = Call("POST", "/v1/ingest")
    create = Call("POST", "/v1/jobs", headers={"Idempotency-Key": "k"})
    refused, broken = httpx.ConnectError("refused"), httpx.ReadError("reset")
    assert policy.delay(post, 0, refused) is not None
    assert policy.delay(post, 0, broken) is None
    assert policy.delay(create, 0, broken) is not None
    assert policy.delay(Call("GET", "/v1/media"), 0, broken) is not None
    busy = httpx.Response(429, headers={"Retry-After": "3"})
    assert policy.delay(post, 0, busy) == 3
    assert policy.delay(post, 0, httpx.Response(503, headers={"Retry-After": "60"})) == 5
    assert policy.delay(post, 2, busy) is None  # out of retries
    assert policy.delay(create, 0, httpx.Response(500)) is None
    with pytest.raises(ConnectionFailed):
        policy.after(create, 2, broken)


def test_create_with_the_same_idempotency_key_gives_the_same_job(busque, app):
    key = f"client-test-{uuid.uuid4()}"
    first = busque.create_job("echo", {"n": 1}, idempotency_key=key, labels={"test": "client"})
    again = busque.create_job("echo", {"n": 1}, idempotency_key=key, labels={"test": "client"})
    assert isinstance(first, Job) and first.id == again.id
    assert (first.replayed, again.replayed) == (False, True)
    with pytest.raises(Conflict) as refused:  # the same key for another request
        busque.create_job("echo", {"n": 2}, idempotency_key=key)
    assert refused.value.status == 409 and refused.value.code == "idempotency_conflict"
    # Without a key the client makes one per call: two calls, two jobs.
    assert busque.create_job("echo").id != busque.create_job("echo").id
    with pytest.raises(Unauthorized) as unauthorized, Client(app.url, "bq_wrong") as stranger:
        stranger.get_job(first.id)
    assert unauthorized.value.code == "unauthorized" and unauthorized.value.message


def test_a_create_is_retried_through_a_refused_connection_and_makes_one_job(app, proxy):
    counts: dict[str, int] = {}
    proxy.down()
    threading.Timer(1.0, proxy.up).start()
    retry = RetryPolicy(max_retries=8, backoff_s=0.2, max_delay_s=0.5)
    with Client(
        f"http://{proxy.address}", app.admin_key, retry=retry, http=counting_http(counts)
    ) as client:
        started = time.monotonic()
        job = client.create_job("echo", {"through": "outage"}, labels={"test": "client-outage"})
        assert time.monotonic() - started >= 0.9  # it waited for the proxy to come back
        assert counts["sent"] >= 2 and counts.get("202") == 1
        assert client.wait(job, timeout=30).status == "succeeded"
        # Nothing was sent twice: one job has these labels.
        page = client.list_jobs(labels={"test": "client-outage"}, limit=10)
        assert [j.id for j in page] == [job.id]
    # With no retries left, the failure is the client's ConnectionFailed, not httpx's error.
    proxy.down()
    with (
        Client(f"http://{proxy.address}", app.admin_key, max_retries=0) as client,
        pytest.raises(ConnectionFailed),
    ):
        client.get_job(job.id)


def test_429_is_retried_after_retry_after(app):
    counts: dict[str, int] = {}
    with Client(app.url, tenant_key(app, "client-retries"), http=counting_http(counts)) as client:
        pages = [client.list_jobs(limit=1) for _ in range(6)]  # a burst of 2 at 4/s
    assert all(page.data == [] or page.data[0].id for page in pages)
    assert counts["200"] == 6 and counts.get("429", 0) >= 1, counts


def test_wait_run_cancel_and_a_failed_job(busque):
    done = busque.run("echo", {"hello": "client"}, timeout=30)
    assert done.status == "succeeded" and done.result == {"echo": {"hello": "client"}}
    with pytest.raises(JobFailed) as failed:
        busque.run("fail", {"message": "the model gave up"}, timeout=30)
    job = failed.value.job
    assert job.status == "failed" and failed.value.code == job.error["code"]
    assert failed.value.code and "the model gave up" in str(failed.value)
    slow = busque.create_job("sleep", {"seconds": 30})
    with pytest.raises(WaitTimeout) as late:
        busque.wait(slow, timeout=0.5)
    assert late.value.job.id == slow.id and not late.value.job.done
    busque.cancel_job(slow)
    assert busque.wait(slow, timeout=30).status == "canceled"
    assert busque.cancel_job(slow).status == "canceled"  # again: safe to retry
    with pytest.raises(Conflict):  # a job that succeeded cannot be canceled
        busque.cancel_job(done.id)
    again = busque.retry_job(slow)
    assert again.id != slow.id and again.labels.get("retry_of") == slow.id
    busque.cancel_job(again)
    with pytest.raises(NotFound) as missing:
        busque.get_job("job_does_not_exist")
    assert missing.value.status == 404 and missing.value.code == "job_not_found"


def test_artifacts_download_as_bytes_and_to_a_file(busque, tmp_path):
    job = busque.run("artifact", {"text": "written by a job"}, timeout=30)
    (artifact,) = busque.artifacts(job)
    assert artifact.name == "out.txt" and artifact.size == len("written by a job")
    assert busque.download(artifact) == b"written by a job"
    path = busque.download(artifact, tmp_path / "out.txt")
    assert path.read_bytes() == b"written by a job"


def test_an_event_stream_cut_in_the_middle_resumes_without_losing_or_repeating(app, proxy):
    tokens = [f"t{i} " for i in range(40)]
    retry = RetryPolicy(max_retries=20, backoff_s=0.1, max_delay_s=0.3)
    with Client(f"http://{proxy.address}", app.admin_key, retry=retry) as client:
        job = client.create_job("stream", {"tokens": tokens, "delay": 0.05})
        stream = client.job_events(job)
        seen = []
        for event in stream:
            seen.append(event)
            if sum(e.type == "job.output" for e in seen) == 5:
                proxy.down()  # resets the stream's connection in the middle
                threading.Timer(0.5, proxy.up).start()
        assert stream.reconnects >= 1
    with Client(app.url, app.admin_key) as direct:
        everything = list(direct.job_events(job))  # the whole audit log, replayed
        assert direct.get_job(job).status == "succeeded"
    assert [e.id for e in seen] == [e.id for e in everything]
    assert len({e.id for e in seen}) == len(seen)
    assert "".join(e.data["chunk"] for e in seen if e.type == "job.output") == "".join(tokens)
    assert seen[-1].terminal and seen[-1].data["status"] == "succeeded"
    # Resuming after an id gives what follows it, and a job's stream that has nothing more ends.
    middle = everything[len(everything) // 2].id
    with Client(app.url, app.admin_key) as direct:
        assert [e.id for e in direct.job_events(job, after=middle)] == [
            e.id for e in everything if e.id > middle
        ]
        assert list(direct.job_events(job, after=everything[-1].id)) == []


def test_the_async_event_stream_resumes_too(app, proxy):
    async def scenario():
        retry = RetryPolicy(max_retries=20, backoff_s=0.1, max_delay_s=0.3)
        async with AsyncClient(f"http://{proxy.address}", app.admin_key, retry=retry) as client:
            job = await client.create_job("stream", {"tokens": list("abcdefghij"), "delay": 0.1})
            stream, seen = client.job_events(job), []
            async for event in stream:
                seen.append(event)
                if len(seen) == 4:
                    proxy.down()
                    asyncio.get_running_loop().call_later(0.4, proxy.up)
            return job, stream.reconnects, seen

    job, reconnects, seen = asyncio.run(scenario())
    with Client(app.url, app.admin_key) as direct:
        assert [e.id for e in seen] == [e.id for e in direct.job_events(job)]
    assert reconnects >= 1 and seen[-1].terminal
    assert "".join(e.data["chunk"] for e in seen if e.type == "job.output") == "abcdefghij"


def test_the_tenant_stream_follows_jobs_by_label(busque):
    label = {"client-stream": uuid.uuid4().hex[:12]}
    job = busque.run("echo", {"x": 1}, labels=label, timeout=30)
    got = []
    with busque.events(labels=label, after=0) as stream:
        for event in stream:
            assert event.job_id == job.id and event.labels == label
            got.append(event)
            if event.terminal:
                break
    assert got[-1].data["status"] == "succeeded" and got[0].id < got[-1].id


def test_presigned_upload_ingest_search_and_media(busque):
    collection = f"client-{uuid.uuid4().hex[:8]}"
    note = f"client test {time.time_ns()}"
    cat, rocket = jpeg("chelsea", note), jpeg("rocket", note)
    upload = busque.upload(cat, "cat.jpg")
    assert upload.headers == {"Content-Type": "image/jpeg"}  # guessed from the name
    assert upload.object_key.endswith("cat.jpg")
    by_key = busque.ingest(object_key=upload.object_key, collection=collection, metadata={"n": 1})
    by_form = busque.ingest(rocket, collection=collection, metadata={"n": 2}, filename="r.jpg")
    assert by_key.phash and len(by_key.sha256) == 64 and by_key.collection == collection
    for accepted in (by_key, by_form):
        assert busque.wait(accepted.job_id, timeout=120).status == "succeeded"
    found = busque.search(jpeg("chelsea", "another note"), collection=collection, k=2)
    assert [m.media_id for m in found][0] == by_key.media_id
    top = found.matches[0]
    assert top.rank == 1 and top.metadata == {"n": 1} and top.phash_distance <= 4
    assert top.score > found.matches[1].score and found.duration_ms > 0
    assert (
        busque.search(media_id=by_form.media_id, collection=collection, k=1).matches[0].media_id
        == by_key.media_id
    )  # the only other one
    with pytest.raises(InvalidRequest) as no_text:  # EfficientNet has no text tower
        busque.search(text="a cat", collection=collection)
    assert no_text.value.code == "no_text_tower" and no_text.value.status == 422
    assert busque.search(phash=by_key.phash, collection=collection, k=1).matches[0].media_id == (
        by_key.media_id
    )
    media = busque.get_media(by_key.media_id)
    assert media.status == "indexed" and media.collection == collection and media.image_url
    assert media["bytes"] == len(cat)  # an unnamed field, from the raw answer
    listed = busque.list_media(collection=collection, limit=1)
    assert len(listed) == 1 and listed.next_cursor  # one per page: a second page exists
    assert {m.id for m in busque.iter_media(collection=collection, limit=1)} == {
        by_key.media_id,
        by_form.media_id,
    }
    assert any(c.collection == collection and c.media == 2 for c in busque.collections())
    busque.delete_media(by_form.media_id)
    with pytest.raises(NotFound):
        busque.get_media(by_form.media_id)


def test_duplicates_faces_and_people(app):
    """A tenant of its own (people and the trash are per tenant): resolve, restore, purge and
    "not duplicates"; a person of three faces, a face moved out and merged back."""
    from tests.face_photos import astronaut, variants

    key = tenant_key(app, f"client-{uuid.uuid4().hex[:8]}")
    with Client(app.url, key) as busque:
        collection = "library"
        files = {
            "cat": jpeg("chelsea"),
            "cat-small": jpeg("chelsea", size=200),
            "cat-low": jpeg("chelsea", quality=30),
            "coffee": jpeg("coffee"),
            **{f"eileen{i}": data for i, data in enumerate(variants(astronaut()))},
        }
        ids = {}
        for name, data in files.items():
            accepted = busque.ingest(data, collection=collection, metadata={"name": name})
            ids[name] = accepted.media_id
            assert busque.wait(accepted.job_id, timeout=120).status == "succeeded"
        names = {v: k for k, v in ids.items()}

        deadline = time.monotonic() + 30
        while True:
            found = busque.duplicates(collection=collection)
            groups = {frozenset(names[m] for m in g.media_ids): g for g in found.groups}
            if frozenset({"cat", "cat-small", "cat-low"}) in groups or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        cats = groups[frozenset({"cat", "cat-small", "cat-low"})]
        assert cats.pairs and all(p.why for p in cats.pairs)
        assert set(found.items) >= set(cats.media_ids)
        assert busque.not_duplicates([ids["cat-small"], ids["coffee"]]) >= 0
        resolved = busque.resolve_duplicates(
            [{"media_ids": cats.media_ids, "keep": [ids["cat"]]}], collection=collection
        )
        assert resolved.groups[0].kept == [ids["cat"]]
        trashed = {m.id for m in busque.trash(collection=collection)}
        assert trashed == {ids["cat-small"], ids["cat-low"]}
        assert busque.restore(ids["cat-small"]).status == "indexed"
        busque.purge(ids["cat-low"])
        assert list(busque.trash(collection=collection)) == []
        with pytest.raises(NotFound):
            busque.purge(ids["cat-low"])
        with pytest.raises(NotFound) as undo:
            busque.undo_resolution("res_nope")
        assert undo.value.code == "resolution_not_found"

        (person,) = busque.list_people()
        faces = busque.list_faces(person_id=person.id)
        assert person.face_count == 3 and len(faces) == 3
        assert {f.media_id for f in faces} == {ids[f"eileen{i}"] for i in range(3)}
        face = busque.get_face(faces.data[0].id)
        moved = busque.move_face(face.id, "new")
        assert moved.person_id not in (None, person.id)
        assert busque.get_person(person.id).face_count == 2
        merged = busque.merge_people(person.id, moved.person_id)
        assert merged.face_count == 3 and [p.id for p in busque.iter_people()] == [person.id]
        assert busque.rename_person(person.id, "Eileen").name == "Eileen"
        assert {m.id for m in busque.person_media(person.id)} == {
            ids[f"eileen{i}"] for i in range(3)
        }
        assert busque.set_collection("no-faces", faces=False).faces is False
        assert any(c.collection == "no-faces" and not c.faces for c in busque.collections())


def test_the_async_client(app):
    async def scenario():
        async with AsyncClient(app.url, app.admin_key) as client:
            key = str(uuid.uuid4())
            first = await client.create_job("echo", {"a": 1}, idempotency_key=key)
            again = await client.create_job("echo", {"a": 1}, idempotency_key=key)
            assert first.id == again.id and again.replayed
            done = await client.wait(first, timeout=30)
            assert done.status == "succeeded"
            events = [e async for e in client.job_events(first)]
            assert events[-1].terminal and [e.id for e in events] == sorted({e.id for e in events})
            with pytest.raises(JobFailed) as failed:
                await client.run("fail", {"message": "async boom"}, timeout=30)
            assert failed.value.code and "async boom" in failed.value.message
            label = {"client-async": uuid.uuid4().hex[:12]}
            made = [(await client.create_job("echo", labels=label)).id for _ in range(3)]
            # Two per page: iter_jobs follows the cursor to the third.
            listed = [job.id async for job in client.iter_jobs(labels=label, limit=2)]
            assert listed == made[::-1]  # newest first
            with pytest.raises(NotFound):
                await client.get_job("job_nope")

    asyncio.run(scenario())


def test_webhook_signatures_are_verified_as_busque_signs_them():
    from busque.jobs.webhooks import new_secret, signed_headers

    secret = new_secret()
    body = b'{"type": "job.status", "timestamp": "2026-01-01T00:00:00Z", "data": {}}'
    headers = signed_headers(secret, "msg_1", body)
    assert verify_webhook(secret, headers, body)["type"] == "job.status"
    assert verify_webhook(secret, {k.upper(): v for k, v in headers.items()}, body.decode())
    with pytest.raises(WebhookVerificationError, match="signature"):
        verify_webhook(secret, headers, body.replace(b"status", b"result"))  # tampered
    with pytest.raises(WebhookVerificationError, match="signature"):
        verify_webhook(new_secret(), headers, body)  # another secret
    old = signed_headers(secret, "msg_1", body, timestamp=int(time.time()) - 600)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify_webhook(secret, old, body)  # a replay after the tolerance
    assert verify_webhook(secret, old, body, tolerance_s=900)
    # While a secret rotates, several signatures come: one matching is enough.
    rotated = dict(headers, **{"webhook-signature": "v1,bm9wZQ== " + headers["webhook-signature"]})
    assert verify_webhook(secret, rotated, body)
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify_webhook(secret, {"webhook-id": "msg_1"}, body)


def test_a_webhook_busque_delivered_verifies(busque):
    """Signed with the job's own secret, or else the tenant's (which /v1/me tells)."""
    from busque.jobs.webhooks import new_secret
    from tests.test_webhooks_e2e import Receiver

    receiver = Receiver()
    try:
        own, tenants = new_secret(), busque.me().webhook_secret
        assert tenants and tenants.startswith("whsec_")
        for secret, hook in ((own, {"secret": own}), (tenants, {})):
            url = receiver.url()
            job = busque.run("echo", {"hook": True}, webhook={"url": url, **hook}, timeout=30)
            deadline = time.monotonic() + 20
            while not any(b"job.result" in r["body"] for r in receiver.received(url)):
                assert time.monotonic() < deadline, "no webhook arrived"
                time.sleep(0.1)
            for request in receiver.received(url):
                payload = verify_webhook(secret, request["headers"], request["body"])
                assert payload["data"]["job_id"] == job.id
                with pytest.raises(WebhookVerificationError):
                    verify_webhook(new_secret(), request["headers"], request["body"])
    finally:
        receiver.close()


def test_openai_points_at_busque(busque):
    chat = busque.openai()
    assert str(chat.base_url).rstrip("/") == busque.config.base_url + "/v1"
    assert chat.api_key == busque.config.api_key
