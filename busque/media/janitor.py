"""Deleting stored objects without depending on the store being up.

What becomes garbage (a deleted media item's renditions, face thumbnails and original; what an
ingest that failed half-way wrote) is queued in `object_deletions` inside the transaction that
makes it garbage, so a store outage never keeps a row alive (the cleanup used to delete from S3
inside the row's transaction, fail, and roll the row back) and never leaves an object for good.
The caller sweeps what it queued at once; the Dispatcher sweeps the rest every `media.janitor_s`
seconds, until the store answers.

An original is content-addressed, shared by every media of the tenant with those bytes: it is
deleted only if none has them when the janitor gets to it, decided under the lock
`Catalog.create` takes for those bytes, so an ingest of them either committed first (and the
original stays) or waits, and stores the original again.

Pending rows whose ingest job never came to exist (the database failed between the two writes)
are removed once they are older than `media.orphan_after_s`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from sqlalchemy import Engine, delete, exists, func, select, update

from busque.db.schema import jobs, media, object_deletions
from busque.media.catalog import Catalog, lock_bytes
from busque.storage import ObjectStore

logger = logging.getLogger("busque.janitor")


class Janitor:
    def __init__(self, engine: Engine, objects: ObjectStore, catalog: Catalog):
        self.engine = engine
        self.objects = objects
        self.catalog = catalog

    def pending(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(object_deletions)).scalar_one()

    def sweep(self, ids: Sequence[int] | None = None, limit: int = 200) -> int:
        """Delete queued objects (these ids, else the oldest `limit`); returns how many are done.
        Never raises for the store: what fails stays queued, with its error."""
        query = select(object_deletions).order_by(object_deletions.c.id).limit(limit)
        if ids is not None:
            if not ids:
                return 0
            query = query.where(object_deletions.c.id.in_(list(ids)))
        with self.engine.connect() as conn:
            queued = [r._asdict() for r in conn.execute(query)]
        return sum(self._delete(row) for row in queued)

    def _delete(self, row: dict) -> bool:
        with self.engine.begin() as conn:
            shared = False
            if row["sha256"]:
                lock_bytes(conn, self.engine, row["tenant_id"], row["sha256"])
                shared = conn.execute(
                    select(media.c.id)
                    .where(media.c.tenant_id == row["tenant_id"], media.c.sha256 == row["sha256"])
                    .limit(1)
                ).first()
            if not shared:
                try:
                    self.objects.delete(row["object_key"])
                except Exception as exc:
                    conn.execute(
                        update(object_deletions)
                        .where(object_deletions.c.id == row["id"])
                        .values(attempts=object_deletions.c.attempts + 1, last_error=str(exc)[:500])
                    )
                    logger.warning("deleting %s failed (queued): %s", row["object_key"], exc)
                    return False
            conn.execute(delete(object_deletions).where(object_deletions.c.id == row["id"]))
        return True

    def remove_orphan_rows(self, older_than_s: float) -> int:
        """Delete pending media rows older than this whose ingest job does not exist."""
        no_job = ~exists(select(jobs.c.id).where(jobs.c.id == media.c.job_id))
        query = select(media.c.id, media.c.tenant_id).where(
            media.c.state == "pending",
            media.c.job_id.is_not(None),
            media.c.created_at < time.time() - older_than_s,
            no_job,
        )
        with self.engine.connect() as conn:
            orphans = conn.execute(query.limit(200)).all()
        for media_id, tenant_id in orphans:
            removed = self.catalog.delete(media_id, tenant_id)
            if removed is not None:
                logger.warning("removed media %s: its ingest job was never created", media_id)
                self.sweep(removed["deletions"])
        return len(orphans)
