"""One ingest path: the same photos ingested online (POST /v1/ingest, through the real Serve
app) and backfilled (the Ray Data pipeline) get the same pHash, the same embedding (within float
tolerance: batches differ) and the same faces; a reindex that recomputes embeddings gets them
again. busque.media.render is the code both share."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
import skimage.data
from PIL import Image
from sqlalchemy import select

from busque.db.schema import faces, media
from busque.media.catalog import bytes_to_vector
from busque.runtime import Runtime
from pipelines.backfill import backfill
from pipelines.reindex import reindex
from tests.conftest import wait_for


def encoded(image: Image.Image, fmt: str = "JPEG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def photos() -> dict[str, bytes]:
    """Photos that take every branch of the decode: a JPEG that is its own normalised
    rendition, one over the 2048 px cap (decoded at reduced scale), one turned by EXIF, a PNG,
    and a portrait with a face."""
    import matplotlib.cbook

    astronaut = Image.fromarray(skimage.data.astronaut()).convert("RGB")
    chelsea = Image.fromarray(skimage.data.chelsea()).convert("RGB")
    coffee = Image.fromarray(skimage.data.coffee()).convert("RGB")
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = Image.open(f).convert("RGB")
    turned = Image.Exif()
    turned[0x0112] = 6  # shown rotated by 90 degrees
    return {
        "as-is.jpg": encoded(chelsea, quality=90),
        "large.jpg": encoded(astronaut.resize((3000, 3000), Image.Resampling.LANCZOS), quality=92),
        "turned.jpg": encoded(coffee, quality=90, exif=turned),
        "lossless.png": encoded(chelsea.transpose(Image.Transpose.FLIP_LEFT_RIGHT), "PNG"),
        "face.jpg": encoded(hopper, quality=90),
    }


def stored(runtime: Runtime, tenant: str, collection: str) -> dict[str, dict]:
    """sha256 -> the catalog's pHash, embedding and face boxes of a collection."""
    with runtime.engine.connect() as conn:
        rows = conn.execute(
            select(media.c.id, media.c.sha256, media.c.phash, media.c.embedding).where(
                media.c.tenant_id == tenant, media.c.collection == collection
            )
        ).all()
        boxes = {}
        for row in rows:
            found = conn.execute(
                select(faces.c.x, faces.c.y, faces.c.w, faces.c.h).where(faces.c.media_id == row.id)
            ).all()
            boxes[row.sha256] = sorted(tuple(box) for box in found)
    return {
        row.sha256: {
            "phash": row.phash,
            "vector": bytes_to_vector(row.embedding),
            "faces": boxes[row.sha256],
        }
        for row in rows
    }


def assert_same(online: dict[str, dict], batch: dict[str, dict]) -> None:
    assert online.keys() == batch.keys()
    for sha256, item in online.items():
        other = batch[sha256]
        assert item["phash"] == other["phash"], sha256
        assert np.allclose(item["vector"], other["vector"], atol=1e-4), (
            sha256,
            float(np.abs(item["vector"] - other["vector"]).max()),
        )
        assert len(item["faces"]) == len(other["faces"]), sha256
        for a, b in zip(item["faces"], other["faces"], strict=True):
            assert max(abs(x - y) for x, y in zip(a, b, strict=True)) <= 1, (sha256, a, b)


@pytest.mark.timeout(600)
def test_online_ingest_backfill_and_reindex_store_the_same(app, tmp_path):
    runtime = Runtime(app.settings)
    collection = f"paths-{int(time.time() * 1000)}"
    files = photos()
    with app.client() as client:
        tenant = client.get("/v1/me").json()["tenant_id"]
        client.put(f"/v1/collections/{collection}", json={"faces": True}).raise_for_status()
        jobs = []
        for name, data in files.items():
            response = client.post(
                "/v1/ingest",
                files={"image": (name, data, "application/octet-stream")},
                data={"collection": collection},
            )
            assert response.status_code == 202, response.text
            jobs.append(response.json()["job_id"])
        for job_id in jobs:
            assert wait_for(client, job_id, timeout=180)["status"] == "succeeded"
    online = stored(runtime, tenant, collection)
    assert len(online) == len(files)
    assert any(item["faces"] for item in online.values()), "the portrait's face was not found"

    root = tmp_path / "library"
    root.mkdir()
    for name, data in files.items():
        (root / name).write_bytes(data)
    other = runtime.keys.ensure_tenant(f"paths-batch-{collection}")  # nothing deduped away
    report = backfill(runtime, other, root, collection=collection, progress=False)
    assert report["uploaded"] == len(files) and report["failed"] == 0, report
    assert_same(online, stored(runtime, other, collection))

    reindex(runtime, tenant, collection, recompute=True)
    assert_same(online, stored(runtime, tenant, collection))
