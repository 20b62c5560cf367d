"""The gallery API a user would write instead of busque's (bench/review_pages.py's baseline): one
FastAPI app under uvicorn reading the same SQLite catalog with plain SQL, as FastAPI's SQL
tutorial does (a connection per request, rows straight to JSON).

    BENCH_GALLERY_DB=sqlite:///PATH BENCH_GALLERY_TENANT=T \
        uvicorn bench.peers.gallery_fastapi:app --workers 2 --port P

GET /media takes busque's parameters (collection, limit, camera, since, until) and answers the
same page: the newest items first, busque's filter meanings (camera: the EXIF camera contains
the text, any case; a date: the EXIF capture time, else the time it was added; `until`
exclusive), the same fields and a next cursor. It skips what a one-user toy does not need: API
keys and tenants (one tenant, fixed at start), signed URLs (plain paths), the embedding column
(busque's catalog reads whole rows).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

from fastapi import FastAPI
from sqlalchemy import create_engine, text

ENGINE = create_engine(os.environ.get("BENCH_GALLERY_DB", "sqlite://"))
TENANT = os.environ.get("BENCH_GALLERY_TENANT", "")
COLUMNS = (
    "id, collection, state, sha256, phash, width, height, format, bytes, metadata, labels, "
    "embedding_model, created_at, indexed_at, normalized_key, thumbnail_key"
)
CAPTURED = "json_extract(metadata, '$.captured_at')"

app = FastAPI()


@app.get("/healthz")
def healthz() -> dict:
    return {"ok": True}


def on_or_after(name: str, moment: str, params: dict) -> str:
    when = datetime.fromisoformat(moment)
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    params[name] = when.strftime("%Y-%m-%dT%H:%M:%S")
    params[name + "_epoch"] = when.timestamp()
    return (
        f"(({CAPTURED} IS NOT NULL AND {CAPTURED} >= :{name}) "
        f"OR ({CAPTURED} IS NULL AND created_at >= :{name}_epoch))"
    )


def iso(seconds: float | None) -> str | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC).isoformat()


@app.get("/media")
def media(
    collection: str,
    limit: int = 50,
    camera: str | None = None,
    since: str | None = None,
    until: str | None = None,
    cursor: str | None = None,
) -> dict:
    # A plain `def`: FastAPI runs it on its thread pool, so requests overlap.
    where = ["tenant_id = :tenant", "collection = :collection", "state = 'indexed'"]
    params: dict = {"tenant": TENANT, "collection": collection, "limit": limit + 1}
    if camera:
        where.append("lower(json_extract(metadata, '$.camera')) LIKE :camera ESCAPE '\\'")
        escaped = camera.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params["camera"] = f"%{escaped}%"
    if since:
        where.append(on_or_after("since", since, params))
    if until:
        where.append("NOT " + on_or_after("until", until, params))
    if cursor:
        where.append("id < :cursor")
        params["cursor"] = cursor
    sql = f"SELECT {COLUMNS} FROM media WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT :limit"
    with ENGINE.connect() as conn:
        rows = conn.execute(text(sql), params).mappings().all()
    more = len(rows) > limit
    rows = rows[:limit]
    data = [
        {
            "id": r["id"],
            "object": "media",
            "collection": r["collection"],
            "status": r["state"],
            "sha256": r["sha256"],
            "phash": f"{r['phash'] & (2**64 - 1):016x}",
            "width": r["width"],
            "height": r["height"],
            "format": r["format"],
            "bytes": r["bytes"],
            "metadata": json.loads(r["metadata"]),
            "labels": json.loads(r["labels"]),
            "embedding_model": r["embedding_model"],
            "created_at": iso(r["created_at"]),
            "indexed_at": iso(r["indexed_at"]),
            "image_url": "/objects/" + r["normalized_key"],
            "thumbnail_url": "/objects/" + r["thumbnail_key"],
        }
        for r in rows
    ]
    return {"data": data, "next_cursor": rows[-1]["id"] if more and rows else None}
