"""Keyset pagination by time-ordered string id, newest first, with opaque cursors."""

from __future__ import annotations

import base64

from sqlalchemy import Column, Engine, Select


def encode_cursor(row_id: str) -> str:
    return base64.urlsafe_b64encode(row_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, prefix: str = "job_") -> str:
    try:
        job_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError as exc:
        raise ValueError("invalid cursor") from exc
    if not job_id.startswith(prefix) or not job_id.isascii():
        raise ValueError("invalid cursor")
    return job_id


def newest_first(
    reader: Engine, query: Select, id_column: Column, *, limit: int, cursor: str | None, prefix: str
) -> tuple[list[dict], str | None]:
    """One page of `query`'s rows and the cursor of the next page (None on the last one).
    A malformed cursor raises ValueError."""
    if cursor:
        query = query.where(id_column < decode_cursor(cursor, prefix=prefix))
    with reader.connect() as conn:
        rows = [
            r._asdict() for r in conn.execute(query.order_by(id_column.desc()).limit(limit + 1))
        ]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1][id_column.name]) if more and rows else None
