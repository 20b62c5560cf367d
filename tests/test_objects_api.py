"""Uploads and signed object URLs of the local backend, through the real app over HTTP."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from busque.storage import LocalObjectStore
from tests.conftest import wait_for
from tests.test_jobs_api import assert_error, submit


@pytest.fixture(scope="module")
def store(app) -> LocalObjectStore:
    """The app's store, opened here with the same root and signing key (to presign URLs)."""
    storage = app.settings.storage
    return LocalObjectStore(Path(storage.local_dir), storage.signing_key, app.url)


@pytest.fixture
def anonymous(app):
    with httpx.Client(timeout=30) as c:  # signed URLs carry their own credential
        yield c


def data_path(store: LocalObjectStore, key: str) -> Path:
    return store.root / "data" / key


def new_upload(client, filename="photo.jpg", content_type="image/jpeg") -> dict:
    response = client.post("/v1/uploads", json={"filename": filename, "content_type": content_type})
    assert response.status_code == 201, response.text
    return response.json()


def raw_request(app, method: str, target: str, body: bytes | None = None) -> tuple[int, bytes]:
    """Send `target` exactly as written (httpx would normalize `..` segments away)."""
    parts = urlsplit(app.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request(method, target, body=body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_upload_ticket_sanitizes_the_filename_and_put_stores_the_bytes(
    app, client, store, anonymous
):
    tenant = client.get("/v1/me").json()["tenant_id"]
    ticket = new_upload(client, "../../etc/passwd", "text/plain")
    key = ticket["object_key"]
    assert key.startswith(f"{tenant}/uploads/")
    segments = key.split("/")
    assert ".." not in segments and "." not in segments
    assert segments[-1] == "passwd" and len(segments) == 4
    assert ticket["method"] == "PUT" and ticket["max_bytes"] == app.settings.serve.max_body_bytes
    assert ticket["headers"] == {"Content-Type": "text/plain"}
    assert ticket["upload_url"].startswith(app.url + "/v1/objects/")

    body = b"root:x:0:0:not really\n"
    response = anonymous.put(ticket["upload_url"], content=body, headers=ticket["headers"])
    assert response.status_code == 200, response.text
    assert response.json()["object_key"] == key and response.json()["size"] == len(body)
    stored = data_path(store, key)
    assert stored.read_bytes() == body
    assert stored.resolve().is_relative_to(store.root / "data")
    # And it downloads through a GET URL.
    downloaded = anonymous.get(store.presign_get(key, 60))
    assert downloaded.status_code == 200
    assert downloaded.content == body
    assert downloaded.headers["content-type"].startswith("text/plain")


def test_an_upload_content_type_must_be_a_mime_type(client):
    """It becomes a header of the signed PUT: a line break would smuggle in another header."""
    for content_type in ("image/jpeg\r\nX-Evil: 1", "jpeg", "image/jpeg; a=\n"):
        response = client.post(
            "/v1/uploads", json={"filename": "a.jpg", "content_type": content_type}
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "invalid_request"
    assert new_upload(client, content_type="text/plain; charset=utf-8")["upload_url"]


def test_uploads_need_the_objects_scope(app):
    from busque.cli import _key_store

    reader = _key_store(app.settings).create("default", "reader", ("jobs:read",)).key
    with app.client(reader) as c:
        assert_error(c.post("/v1/uploads", json={"filename": "x"}), 403, "forbidden")
    with httpx.Client(base_url=app.url) as c:
        assert_error(c.post("/v1/uploads", json={"filename": "x"}), 401, "unauthorized")


def tamper(url: str, **changes) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return parts._replace(query="&".join(f"{k}={v}" for k, v in query.items())).geturl()


def test_bad_signatures_are_refused(client, store, anonymous):
    ticket = new_upload(client, "a.txt", "text/plain")
    key = ticket["object_key"]
    put_url = ticket["upload_url"]
    sig = parse_qs(urlsplit(put_url).query)["sig"][0]
    forged = ("0" if sig[0] != "0" else "1") + sig[1:]

    assert_error(anonymous.put(tamper(put_url, sig=forged), content=b"x"), 403, "invalid_signature")
    # A later expiry (to extend a URL) breaks the signature.
    later = int(parse_qs(urlsplit(put_url).query)["expires"][0]) + 3600
    assert_error(
        anonymous.put(tamper(put_url, expires=later), content=b"x"), 403, "invalid_signature"
    )
    # A GET URL cannot upload, with or without method=PUT added.
    get_url = store.presign_get(key, 60)
    assert_error(anonymous.put(get_url, content=b"x"), 403, "invalid_signature")
    assert_error(anonymous.put(get_url + "&method=PUT", content=b"x"), 403, "invalid_signature")
    # A PUT URL cannot download.
    assert not data_path(store, key).exists()
    store.put(key, b"secret", "text/plain")
    assert_error(anonymous.get(put_url), 403, "invalid_signature")
    assert_error(anonymous.get(tamper(get_url, sig=forged)), 403, "invalid_signature")
    assert_error(anonymous.get(tamper(get_url, sig="")), 403, "invalid_signature")
    # The signature binds the key: another key with this signature is refused.
    other = get_url.replace("/a.txt?", "/b.txt?")
    assert other != get_url
    assert_error(anonymous.get(other), 403, "invalid_signature")
    assert data_path(store, key).read_bytes() == b"secret"  # no forged PUT overwrote it
    assert anonymous.get(get_url).content == b"secret"


def test_expired_urls_are_refused(client, store, anonymous):
    key = new_upload(client, "old.txt", "text/plain")["object_key"]
    store.put(key, b"old", "text/plain")
    assert anonymous.get(store.presign_get(key, 60)).status_code == 200
    error = assert_error(anonymous.get(store.presign_get(key, -5)), 403, "invalid_signature")
    assert "expired" in error["message"]
    expired_put = store.presign_put(key, -5)
    assert_error(anonymous.put(expired_put, content=b"new"), 403, "invalid_signature")
    assert data_path(store, key).read_bytes() == b"old"


def test_path_traversal_never_leaves_the_store(app, store, tmp_path):
    outside = store.root / "outside-secret.txt"  # next to data/, outside every object key
    outside.write_text("TOP SECRET")
    expires = int(time.time()) + 600
    try:
        for key in ("../outside-secret.txt", "../../etc/passwd", "a/../../outside-secret.txt"):
            # Even with a valid signature for the traversal key, it is refused.
            sig = store._sign("GET", key, expires)
            for path in (key.replace("/", "%2F"), key):
                status, body = raw_request(
                    app, "GET", f"/v1/objects/{path}?expires={expires}&sig={sig}"
                )
                assert status in (400, 403, 404), (path, status, body)
                assert b"TOP SECRET" not in body and b"root:" not in body
                assert json.loads(body)["error"]["code"], body  # the error envelope
            status, body = raw_request(
                app,
                "PUT",
                f"/v1/objects/{key.replace('/', '%2F')}?expires={expires}&method=PUT"
                f"&sig={store._sign('PUT', key, expires)}",
                body=b"overwritten",
            )
            assert status in (400, 403, 404), (key, status, body)
        assert outside.read_text() == "TOP SECRET"
        status, body = raw_request(
            app, "GET", f"/v1/objects/..%2F..%2Fetc%2Fpasswd?expires={expires}&sig=abc"
        )
        assert status == 400 and b'"invalid_key"' in body
        status, body = raw_request(app, "GET", f"/v1/objects/a/../../b?expires={expires}&sig=abc")
        assert status in (400, 403, 404) and json.loads(body)["error"]["code"]
    finally:
        outside.unlink()


def test_oversized_uploads_are_refused_and_keep_nothing(app, client, store, anonymous):
    limit = app.settings.serve.max_body_bytes
    ticket = new_upload(client, "big.bin", "application/octet-stream")
    path = data_path(store, ticket["object_key"])
    response = anonymous.put(ticket["upload_url"], content=b"x" * (limit + 1))
    assert_error(response, 413, "payload_too_large")
    assert not path.exists()

    def chunks():  # no Content-Length: the streamed body is counted
        for _ in range(limit // 4096 + 2):
            yield b"y" * 4096

    response = anonymous.put(ticket["upload_url"], content=chunks())
    assert_error(response, 413, "payload_too_large")
    assert not path.exists()
    assert not list((store.root / "tmp").glob("put-*"))
    # Exactly the limit is fine.
    response = anonymous.put(ticket["upload_url"], content=b"z" * limit)
    assert response.status_code == 200, response.text
    assert path.stat().st_size == limit


def test_artifact_download_through_its_signed_url(client, anonymous):
    job = submit(client, "artifact", {"text": "hello artifact"})
    done = wait_for(client, job["id"])
    assert done["status"] == "succeeded", done
    assert done["result"] == {"artifact": "out.txt", "size": len("hello artifact")}
    listing = client.get(f"/v1/jobs/{job['id']}/artifacts")
    assert listing.status_code == 200
    [art] = listing.json()["data"]
    assert art["name"] == "out.txt" and art["size"] == len("hello artifact")
    assert art["content_type"].startswith("text/plain")
    assert art["object_key"].endswith("/out.txt") and art["url"].startswith("http")
    response = anonymous.get(art["url"])  # no API key: the signature is the credential
    assert response.status_code == 200, response.text
    assert response.text == "hello artifact"
    assert response.headers["content-type"].startswith("text/plain")
    assert_error(anonymous.get(tamper(art["url"], sig="0" * 64)), 403, "invalid_signature")


def test_an_upload_over_the_image_limit_is_refused_by_every_reader(app, client, anonymous):
    """A presigned PUT carries no size bound beyond the HTTP body limit (for S3, none): every
    endpoint that reads an uploaded object caps it at media.max_upload_bytes, and answers 413
    without reading the rest (match and sync read it whole before)."""
    limit = app.settings.media.max_upload_bytes
    assert app.settings.serve.max_body_bytes > limit + 1
    ticket = new_upload(client, "big.jpg", "image/jpeg")
    assert anonymous.put(ticket["upload_url"], content=b"\xff" * (limit + 1)).status_code == 200
    key = ticket["object_key"]
    digest = "0" * 64
    for path, body in (
        ("/v1/ingest", {"object_key": key}),
        ("/v1/match", {"job_id": "big", "object_key": key}),
        ("/v1/faces/search", {"object_key": key}),
        (
            "/v1/media/sync",
            {"media_info": {"hash": digest, "file_name": "b.jpg", "storage_path": key}},
        ),
    ):
        error = assert_error(client.post(path, json=body), 413, "payload_too_large")
        assert error["details"] == {"max_bytes": limit}, (path, error)
