"""Queueing objects for deletion inside the transaction that makes them garbage; the janitor
(busque.media.janitor) deletes them."""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import insert

from busque.db.schema import object_deletions


def queue_deletions(
    conn, tenant_id: str, keys: Iterable[str], sha256: str | None = None
) -> list[int]:
    """Queue keys for deletion in the caller's transaction; `sha256` marks an original, kept
    while media with those bytes exist. Returns the queued ids."""
    now = time.time()
    return [
        conn.execute(
            insert(object_deletions)
            .values(
                tenant_id=tenant_id,
                object_key=key,
                sha256=sha256,
                created_at=now,
                attempts=0,
            )
            .returning(object_deletions.c.id)
        ).scalar_one()
        for key in keys
    ]
