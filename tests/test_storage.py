"""The object store on both backends: local files and a real SeaweedFS S3 server."""

from __future__ import annotations

import os
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from busque.config import StorageSettings
from busque.storage import (
    InvalidKey,
    LocalObjectStore,
    ObjectNotFound,
    ObjectTooLarge,
    S3ObjectStore,
    SignatureError,
    TooLarge,
    open_object_store,
    safe_filename,
    tenant_key,
    validate_key,
)

BAD_KEYS = ["", "/abs/key", "a\\b", "a/../b", "../a", "a/./b", "a//b", "a/b/", "a\x00b", "a\nb"]


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects", "test-signing-key", "http://api.test")
    server = request.getfixturevalue("seaweedfs_server")
    return S3ObjectStore(
        server["endpoint"], server["access_key"], server["secret_key"], f"b-{uuid.uuid4().hex[:12]}"
    )


@pytest.fixture
def local(tmp_path):
    return LocalObjectStore(tmp_path / "objects", "test-signing-key", "http://api.test/")


# -- keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", BAD_KEYS + ["x" * 1025])
def test_validate_key_rejects(key):
    with pytest.raises(InvalidKey):
        validate_key(key)


def test_validate_key_tenant_prefix():
    assert validate_key("t1/a/b.jpg", tenant="t1") == "t1/a/b.jpg"
    for key in ("t2/a", "t1x/a", "t1", "a/t1/b"):
        with pytest.raises(InvalidKey):
            validate_key(key, tenant="t1")
    assert tenant_key("t1", "uploads", "x.png") == "t1/uploads/x.png"
    with pytest.raises(InvalidKey):
        tenant_key("t1", "..", "t2", "x")


@pytest.mark.parametrize(
    "name, expected",
    [
        ("photo.jpg", "photo.jpg"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\cat dog.png", "cat_dog.png"),
        ("..", "file"),
        (".", "file"),
        ("", "file"),
        ("ünïcødé.txt", "n_c_d_.txt"),
    ],
)
def test_safe_filename(name, expected):
    assert safe_filename(name) == expected


def test_safe_filename_is_bounded():
    assert len(safe_filename("a" * 500 + ".jpg")) == 100


# -- both backends -------------------------------------------------------------------------


def test_round_trip(store):
    info = store.put("t1/a/one.bin", b"hello", content_type="application/x-test")
    assert (info.key, info.size, info.content_type) == ("t1/a/one.bin", 5, "application/x-test")
    store.put("t1/a/b/two.jpg", b"jpeg bytes")
    store.put("t2/other", b"x")
    assert store.get("t1/a/one.bin") == b"hello"
    stat = store.stat("t1/a/one.bin")
    assert (stat.size, stat.content_type) == (5, "application/x-test")
    assert store.stat("t1/a/b/two.jpg").content_type == "image/jpeg"
    assert sorted(i.key for i in store.list("t1/")) == ["t1/a/b/two.jpg", "t1/a/one.bin"]
    assert [i.key for i in store.list("t1/a/b")] == ["t1/a/b/two.jpg"]
    assert {i.size for i in store.list("t1/a/")} == {5, 10}
    store.put("t1/a/one.bin", b"replaced")
    assert store.get("t1/a/one.bin") == b"replaced"
    store.delete("t1/a/one.bin")
    assert store.stat("t1/a/one.bin") is None
    store.delete("t1/a/one.bin")  # absent: no error
    assert [i.key for i in store.list("t1/")] == ["t1/a/b/two.jpg"]


def test_missing_object(store):
    assert store.stat("t1/nope") is None
    with pytest.raises(ObjectNotFound):
        store.get("t1/nope")
    assert list(store.list("t1/")) == []


def test_a_capped_get_refuses_a_larger_object(store):
    store.put("t1/big.bin", b"x" * 5000)
    assert store.get("t1/big.bin", max_bytes=5000) == b"x" * 5000
    with pytest.raises(ObjectTooLarge, match="5000 bytes; the limit is 4999") as refused:
        store.get("t1/big.bin", max_bytes=4999)
    assert (refused.value.size, refused.value.max_bytes) == (5000, 4999)
    with pytest.raises(ObjectNotFound):
        store.get("t1/nope", max_bytes=10)


@pytest.mark.parametrize("key", BAD_KEYS)
def test_every_method_validates_keys(store, key, tmp_path):
    (tmp_path / "f").write_bytes(b"x")
    calls = [
        lambda: store.put(key, b"x"),
        lambda: store.put_file(key, tmp_path / "f"),
        lambda: store.get(key),
        lambda: store.get_file(key, tmp_path / "out"),
        lambda: store.stat(key),
        lambda: store.delete(key),
        lambda: store.presign_get(key, 60),
        lambda: store.presign_put(key, 60),
    ]
    for call in calls:
        with pytest.raises(InvalidKey):
            call()


def test_list_validates_prefix(store):
    for prefix in ("/abs", "../x", "a//", "a/../"):
        with pytest.raises(InvalidKey):
            list(store.list(prefix))


def test_put_file_large(store, tmp_path):
    data = os.urandom(12 * 2**20 + 123)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    info = store.put_file("t1/big.bin", path)
    assert info.size == len(data)
    assert store.stat("t1/big.bin").size == len(data)
    assert store.get("t1/big.bin") == data
    # ...and back into a file, streamed, under a cap.
    info = store.get_file("t1/big.bin", tmp_path / "back.bin", max_bytes=len(data))
    assert info.size == len(data) and (tmp_path / "back.bin").read_bytes() == data
    with pytest.raises(ObjectTooLarge):
        store.get_file("t1/big.bin", tmp_path / "capped.bin", max_bytes=len(data) - 1)
    assert not (tmp_path / "capped.bin").exists()
    with pytest.raises(ObjectNotFound):
        store.get_file("t1/nope.bin", tmp_path / "nope.bin")


# -- S3 presigned URLs over real HTTP ------------------------------------------------------


@pytest.fixture
def s3(seaweedfs_server):
    server = seaweedfs_server
    return S3ObjectStore(
        server["endpoint"], server["access_key"], server["secret_key"], f"b-{uuid.uuid4().hex[:12]}"
    )


def _tamper(url: str) -> str:
    head, sig = url.rsplit("X-Amz-Signature=", 1)
    flipped = ("0" if sig[0] != "0" else "1") + sig[1:]
    return f"{head}X-Amz-Signature={flipped}"


def test_s3_presigned_put_then_get(s3):
    put_url = s3.presign_put("t1/up/photo.png", 60, content_type="image/png")
    r = httpx.put(put_url, content=b"png bytes", headers={"Content-Type": "image/png"})
    assert r.status_code == 200, r.text
    assert s3.stat("t1/up/photo.png").content_type == "image/png"
    get_url = s3.presign_get("t1/up/photo.png", 60)
    r = httpx.get(get_url)
    assert (r.status_code, r.content) == (200, b"png bytes")

    assert httpx.get(_tamper(get_url)).status_code == 403
    assert httpx.put(_tamper(put_url), content=b"evil").status_code == 403
    assert s3.get("t1/up/photo.png") == b"png bytes"


def test_s3_presigned_urls_expire(s3):
    s3.put("t1/soon", b"x")
    get_url = s3.presign_get("t1/soon", 1)
    put_url = s3.presign_put("t1/soon", 1)
    time.sleep(2.1)
    assert httpx.get(get_url).status_code == 403
    assert httpx.put(put_url, content=b"late").status_code == 403
    assert s3.get("t1/soon") == b"x"


def test_s3_ping_creates_bucket(s3):
    s3.ping()
    assert s3.client.bucket_exists(s3.bucket)
    s3.ping()  # already there: fine


def test_s3_ping_unreachable():
    from busque.testing.servers import free_port

    store = S3ObjectStore(f"127.0.0.1:{free_port()}", "k", "s", "b")
    with pytest.raises(Exception):  # noqa: B017 - any connection error will do
        store.ping()


# -- local signed URLs ---------------------------------------------------------------------


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_local_presigned_url_shape(local):
    url = local.presign_get("t1/a b/ü.jpg", 60)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == "http://api.test"
    assert parts.path == "/v1/objects/t1/a%20b/%C3%BC.jpg"
    q = _query(url)
    assert set(q) == {"expires", "sig"}
    assert int(q["expires"]) - time.time() == pytest.approx(60, abs=2)
    assert _query(local.presign_put("t1/x", 60))["method"] == "PUT"


def test_local_verify_signature(local):
    for method, url in (
        ("GET", local.presign_get("t1/k", 60)),
        ("PUT", local.presign_put("t1/k", 60)),
    ):
        q = _query(url)
        local.verify_signature(method, "t1/k", q["expires"], q["sig"])
        local.verify_signature(method.lower(), "t1/k", int(q["expires"]), q["sig"])
        other = "PUT" if method == "GET" else "GET"
        bad = [
            (other, "t1/k", q["expires"], q["sig"]),  # a GET URL is no PUT URL
            (method, "t1/other", q["expires"], q["sig"]),
            (method, "t1/k", str(int(q["expires"]) + 1), q["sig"]),
            (method, "t1/k", q["expires"], q["sig"][:-1] + ("0" if q["sig"][-1] != "0" else "1")),
            (method, "t1/k", q["expires"], ""),
            (method, "t1/k", q["expires"], "ü" * 64),
        ]
        for args in bad:
            with pytest.raises(SignatureError, match="invalid signature"):
                local.verify_signature(*args)


@pytest.mark.parametrize("expires", ["", "abc", "-5", "+5", " 5", "1e9", "1.5", "9" * 40])
def test_local_verify_signature_malformed_expires(local, expires):
    with pytest.raises(SignatureError, match="malformed"):
        local.verify_signature("GET", "t1/k", expires, "0" * 64)


def test_local_verify_signature_expired(local):
    q = _query(local.presign_get("t1/k", 1))
    time.sleep(1.1)
    with pytest.raises(SignatureError, match="expired"):
        local.verify_signature("GET", "t1/k", q["expires"], q["sig"])
    # A different key's signature is not the same URL "expired": it is invalid.
    other = LocalObjectStore(local.root, "another-key", "http://api.test")
    with pytest.raises(SignatureError, match="invalid signature"):
        other.verify_signature("GET", "t1/k", q["expires"], q["sig"])


# -- local specifics -----------------------------------------------------------------------


def _leftovers(store: LocalObjectStore) -> list[str]:
    return [p.relative_to(store.root).as_posix() for p in store.root.rglob("*") if p.is_file()]


def test_local_put_stream_too_large_leaves_nothing(local):
    with pytest.raises(TooLarge):
        local.put_stream("t1/big", iter([b"a" * 600, b"b" * 600]), "text/plain", max_bytes=1000)
    assert list(local.list("")) == []
    assert _leftovers(local) == []
    info = local.put_stream("t1/ok", iter([b"a" * 500, b"b" * 500]), "text/plain", max_bytes=1000)
    assert (info.size, local.get("t1/ok")) == (1000, b"a" * 500 + b"b" * 500)
    assert not list((local.root / "tmp").iterdir())


def test_local_failed_stream_keeps_old_version(local):
    local.put("t1/k", b"old")

    def broken():
        yield b"new"
        raise OSError("client went away")

    with pytest.raises(OSError, match="went away"):
        local.put_stream("t1/k", broken(), None, max_bytes=100)
    assert local.get("t1/k") == b"old"
    assert not list((local.root / "tmp").iterdir())


def test_local_open_read_streams(local):
    data = os.urandom(3 * 2**20 + 5)
    local.put("t1/s.bin", data, "application/octet-stream")
    chunks, info = local.open_read("t1/s.bin")
    assert (info.size, info.content_type) == (len(data), "application/octet-stream")
    parts = list(chunks)
    assert len(parts) > 1 and b"".join(parts) == data
    with pytest.raises(ObjectNotFound):
        local.open_read("t1/none")


def test_local_cannot_escape_root(local, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    (local.root / "data" / "t1").mkdir(parents=True)
    os.symlink(outside, local.root / "data" / "t1" / "link")
    with pytest.raises(InvalidKey):
        local.get("t1/link/secret")
    with pytest.raises(InvalidKey):
        local.put("t1/link/new", b"x")
    assert not (outside / "new").exists()


def test_local_object_vs_prefix_collision(local):
    local.put("t1/a", b"x")
    with pytest.raises(InvalidKey):
        local.put("t1/a/b", b"y")
    assert local.get("t1/a") == b"x"
    assert local.stat("t1") is None


# -- factory -------------------------------------------------------------------------------


def test_open_object_store(tmp_path):
    settings = StorageSettings(local_dir=tmp_path / "o", signing_key="k")
    store = open_object_store(settings, "http://h:1")
    assert isinstance(store, LocalObjectStore)
    assert store.presign_get("t/x", 10).startswith("http://h:1/v1/objects/t/x?")
    with pytest.raises(ValueError):
        open_object_store(StorageSettings(local_dir=tmp_path / "o"), "http://h:1")
    with pytest.raises(ValueError):
        open_object_store(StorageSettings(signing_key="k"), "http://h:1")
    s3 = open_object_store(
        StorageSettings(backend="s3", s3_endpoint="http://127.0.0.1:1", s3_bucket="b"), "x"
    )
    assert isinstance(s3, S3ObjectStore)
