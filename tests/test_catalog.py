"""The media catalog and ingest renditions, on SQLite and PostgreSQL."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from busque.auth.keys import KeyStore
from busque.db.engine import make_engine
from busque.db.migrate import upgrade
from busque.media.catalog import Catalog, bytes_to_vector
from busque.media.decode import decode_image
from busque.media.normalize import renditions, storage_keys
from busque.storage import InvalidKey
from tests.test_store import db_url  # noqa: F401 - the same per-test databases

KEYS = {"original": "o", "normalized": "n", "thumbnail": "t"}


@pytest.fixture
def catalog(db_url):  # noqa: F811
    upgrade(db_url)
    engine = make_engine(db_url)
    yield Catalog(engine), KeyStore(engine).ensure_tenant("acme")
    engine.dispose()


def add(catalog: Catalog, tenant: str, sha: str, collection: str = "pets", phash: int = 1):
    return catalog.create(
        tenant,
        collection,
        sha256=sha,
        phash=phash,
        width=10,
        height=10,
        format="jpeg",
        size=100,
        metadata={"breed": "tabby"},
    )


def indexed(catalog: Catalog, media_id: str, labels: list[dict] | None = None) -> dict:
    return catalog.mark_indexed(
        media_id,
        keys=KEYS,
        embedding=np.zeros(2, np.float32),
        embedding_model="m",
        embedding_version="1",
        labels=labels or [],
    )


def test_media_lifecycle_logs_adds_and_removes(catalog):
    cat, tenant = catalog
    row = add(cat, tenant, "a" * 64, phash=-5)
    assert cat.get(row["id"])["state"] == "pending"
    assert cat.changes_since(tenant, "pets", 0) == []  # pending media are not in the index
    vector = np.arange(4, dtype=np.float32)
    done = cat.mark_indexed(
        row["id"],
        keys=KEYS,
        embedding=vector,
        embedding_model="m",
        embedding_version="1",
        labels=[{"label": "tabby", "score": 0.9}],
    )
    assert done["state"] == "indexed" and done["phash"] == -5
    assert np.array_equal(bytes_to_vector(done["embedding"]), vector)
    changes = cat.changes_since(tenant, "pets", 0)
    assert [(c["media_id"], c["op"]) for c in changes] == [(row["id"], "add")]
    assert np.array_equal(bytes_to_vector(changes[0]["embedding"]), vector)
    assert cat.delete(row["id"], "another-tenant") is None
    assert cat.delete(row["id"], tenant)["id"] == row["id"]
    assert cat.get(row["id"]) is None
    ops = [c["op"] for c in cat.changes_since(tenant, "pets", changes[0]["id"])]
    assert ops == ["remove"]
    assert (
        cat.mark_indexed(
            row["id"],
            keys=KEYS,
            embedding=vector,
            embedding_model="m",
            embedding_version="1",
            labels=[],
        )
        is None
    )


def test_exact_duplicates_collections_and_listing(catalog):
    cat, tenant = catalog
    ids = []
    for sha, collection in (("a" * 64, "pets"), ("a" * 64, "pets"), ("b" * 64, "other")):
        row = add(cat, tenant, sha, collection)
        indexed(cat, row["id"])
        ids.append(row["id"])
    assert cat.exact_duplicates(tenant) == [ids[:2]]
    assert cat.first_with_sha256(tenant, "a" * 64, exclude=ids[1])["id"] == ids[0]
    assert {c["collection"]: c["media"] for c in cat.collections(tenant)} == {"pets": 2, "other": 1}
    page, cursor = cat.list(tenant, limit=2)
    rest, end = cat.list(tenant, limit=2, cursor=cursor)
    assert [r["id"] for r in page + rest] == sorted(ids, reverse=True) and end is None
    with pytest.raises(ValueError):
        cat.list(tenant, cursor="am9iX3g")  # a job cursor is not a media cursor


def test_gallery_filters_by_date_camera_person_and_label(catalog):
    """The gallery's filters, on both databases: a capture date wins over the time added."""
    from datetime import datetime

    from sqlalchemy import insert, update

    from busque.db.schema import faces, media, people
    from busque.media.gallery_filters import GalleryFilter

    cat, tenant = catalog
    items = {
        "old": (
            {"captured_at": "2019-06-01T10:00:00", "camera": "Canon EOS 5D"},
            "tabby, tabby cat",
        ),
        "new": (
            {"captured_at": "2024-02-03T08:00:00", "camera": "Apple iPhone 12"},
            "golden retriever",
        ),
        "plain": ({}, "100%_real"),  # no capture date: its date is when it was added
    }
    ids = {}
    for n, (name, (metadata, label)) in enumerate(items.items()):
        row = add(cat, tenant, str(n) * 64)
        indexed(
            cat, row["id"], [{"label": label, "score": 0.9}, {"label": "bucket", "score": 0.01}]
        )
        ids[name] = row["id"]
        with cat.engine.begin() as conn:
            conn.execute(update(media).where(media.c.id == row["id"]).values(metadata=metadata))
    with cat.engine.begin() as conn:
        conn.execute(update(media).where(media.c.id == ids["plain"]).values(created_at=1.7e9))
        conn.execute(
            insert(people).values(
                id="per_1", tenant_id=tenant, name="Ann", created_at=0, updated_at=0
            )
        )
        conn.execute(
            insert(faces).values(
                id="fac_1", tenant_id=tenant, media_id=ids["new"], person_id="per_1",
                x=0, y=0, w=1, h=1, score=1.0, embedding=b"", landmarks=[], model="m",
                created_at=0,
            )
        )  # fmt: skip

    def found(**wanted) -> set[str]:
        rows, _ = cat.list(tenant, wanted=GalleryFilter(**wanted))
        return {name for name, media_id in ids.items() if media_id in {r["id"] for r in rows}}

    assert found() == {"old", "new", "plain"}
    assert found(since=datetime(2020, 1, 1)) == {"new", "plain"}  # plain: added in 2023
    assert found(until=datetime(2020, 1, 1)) == {"old"}
    assert found(since=datetime(2023, 1, 1), until=datetime(2024, 1, 1)) == {"plain"}
    assert found(camera="iphone") == {"new"}
    assert found(person_id="per_1") == {"new"}
    assert found(person_id="per_nobody") == set()
    assert found(label="CAT") == {"old"}
    assert found(label="bucket") == {"old", "new", "plain"}
    assert found(label="100%") == {"plain"} and found(label="1_0") == set()  # LIKE taken literally
    assert found(label="retriever", camera="canon") == set()


def test_renditions_and_content_addressed_keys():
    import skimage.data

    buf = io.BytesIO()
    Image.fromarray(skimage.data.chelsea()).resize((3000, 2000)).save(buf, "PNG")
    decoded = decode_image(buf.getvalue(), max_pixels=50_000_000)
    out = renditions(decoded, max_side=1024, thumb_side=128)
    normalized = Image.open(io.BytesIO(out.normalized))
    thumb = Image.open(io.BytesIO(out.thumbnail))
    assert normalized.format == "JPEG" and max(normalized.size) == 1024
    assert thumb.format == "WEBP" and max(thumb.size) == 128
    keys = storage_keys("ten_1", "med_1", decoded.sha256, decoded.format)
    assert keys["original"] == f"ten_1/originals/{decoded.sha256[:2]}/{decoded.sha256}.png"
    assert keys == keys | {
        "normalized": "ten_1/normalized/med_1.jpg",
        "thumbnail": "ten_1/thumbs/med_1.webp",
    }
    with pytest.raises(InvalidKey):
        storage_keys("ten_1", "../x", decoded.sha256, "png")


def test_index_ids_are_never_negative():
    """FAISS marks "no result" with -1; a negative id would vanish from search."""
    from busque.ids import new_id
    from busque.media.catalog import index_id

    ids = [index_id(new_id("med")) for _ in range(2000)] + [index_id("med_" + "f" * 27)]
    assert min(ids) >= 0 and len(set(ids)) == len(ids)
