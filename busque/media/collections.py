"""Per-collection options in the SQL store (today one: whether ingest analyses faces).

A collection needs no row here: one without options takes the defaults from the settings
(`faces.on_ingest`).
"""

from __future__ import annotations

import time

from sqlalchemy import Engine, insert, select, update

from busque.db.engine import readonly
from busque.db.schema import collection_settings


class CollectionStore:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.reader = readonly(engine)

    def faces_enabled(self, tenant_id: str, collection: str, default: bool) -> bool:
        """Whether ingest analyses the faces of photos in this collection."""
        with self.reader.connect() as conn:
            value = conn.execute(
                select(collection_settings.c.faces).where(
                    collection_settings.c.tenant_id == tenant_id,
                    collection_settings.c.name == collection,
                )
            ).scalar()
        return default if value is None else bool(value)

    def set_collection(self, tenant_id: str, name: str, *, faces_on: bool) -> None:
        now = time.time()
        with self.engine.begin() as conn:
            updated = conn.execute(
                update(collection_settings)
                .where(
                    collection_settings.c.tenant_id == tenant_id,
                    collection_settings.c.name == name,
                )
                .values(faces=faces_on, updated_at=now)
            ).rowcount
            if not updated:
                conn.execute(
                    insert(collection_settings).values(
                        tenant_id=tenant_id, name=name, faces=faces_on, updated_at=now
                    )
                )

    def collection_options(self, tenant_id: str) -> dict[str, dict]:
        """The options of each collection of the tenant that has any."""
        with self.reader.connect() as conn:
            rows = conn.execute(
                select(collection_settings).where(collection_settings.c.tenant_id == tenant_id)
            )
            return {r.name: {"faces": bool(r.faces)} for r in rows}
