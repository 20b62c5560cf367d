"""The media catalog: one row per ingested image, plus the change log indices replay.

A media row is created `pending` when an upload is accepted (its sha256 and pHash are known at
once) and becomes `indexed` when its job has stored the files and the embedding. Every add and
remove is also appended to `media_changes`, in the same transaction, so a Matcher can rebuild
exactly what it must serve from its last snapshot plus the changes after it.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Engine, delete, func, insert, or_, select, union, update

from busque.db.engine import is_postgres, readonly
from busque.db.pages import newest_first
from busque.db.schema import library_files, media, media_changes
from busque.ids import new_id
from busque.media.deletions import queue_deletions
from busque.media.gallery_filters import GalleryFilter, conditions
from busque.media.normalize import storage_keys
from busque.media.phash import variants_from_bytes

# A collection's name is a folder of its index snapshots in the object store: letters, digits,
# ".", "_" and "-", but not "." or ".." alone.
COLLECTION_PATTERN = (
    r"^(?:[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}"
    r"|\.[A-Za-z0-9_-][A-Za-z0-9._-]{0,98}"
    r"|\.\.[A-Za-z0-9._-]{1,98})$"
)


def check_collection(name: str) -> str:
    """The name, if it is a valid collection name (COLLECTION_PATTERN); else ValueError."""
    if not re.fullmatch(COLLECTION_PATTERN, name):
        raise ValueError(
            f"invalid collection name {name!r}: up to 100 letters, digits, '.', '_' and '-', "
            "not '.' or '..' alone"
        )
    return name


def index_id(media_id: str) -> int:
    """The id the indices know a media item by: 63 of its id's random bits. Never negative:
    FAISS reports "no result" as -1, so the indices treat negative ids as absent."""
    return int(media_id[-16:], 16) & ((1 << 63) - 1)


def vector_to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def bytes_to_vector(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4")


class Catalog:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.reader = readonly(engine)

    def create(
        self,
        tenant_id: str,
        collection: str,
        *,
        sha256: str,
        phash: int,
        width: int,
        height: int,
        format: str,
        size: int,
        metadata: dict[str, Any],
        media_id: str | None = None,
        job_id: str | None = None,
        phash_variants: bytes | None = None,
    ) -> dict:
        now = time.time()
        media_id = media_id or new_id("med")
        row = dict.fromkeys(media.c.keys()) | {
            "id": media_id,
            "tenant_id": tenant_id,
            "collection": collection,
            "index_id": index_id(media_id),
            "state": "pending",
            "sha256": sha256,
            "phash": phash,
            "phash_variants": phash_variants,
            "width": width,
            "height": height,
            "format": format,
            "bytes": size,
            "metadata": metadata,
            "labels": [],
            "job_id": job_id,
            "created_at": now,
            "updated_at": now,
        }
        with self.engine.begin() as conn:
            lock_bytes(conn, self.engine, tenant_id, sha256)
            conn.execute(insert(media).values(row))
        return row

    def get(self, media_id: str, tenant_id: str | None = None) -> dict | None:
        query = select(media).where(media.c.id == media_id)
        if tenant_id is not None:
            query = query.where(media.c.tenant_id == tenant_id)
        with self.reader.connect() as conn:
            row = conn.execute(query).first()
        return row._asdict() if row else None

    def first_with_sha256(self, tenant_id: str, sha256: str, exclude: str | None = None):
        """The earliest media of the tenant with these exact bytes, created before `exclude` when
        given (a duplicate's original: of copies ingested at once, the first is no duplicate)."""
        query = select(media.c.id, media.c.collection).where(
            media.c.tenant_id == tenant_id, media.c.sha256 == sha256
        )
        if exclude:
            query = query.where(media.c.id < exclude)  # ids are time-ordered (busque.ids)
        with self.reader.connect() as conn:
            row = conn.execute(query.order_by(media.c.id).limit(1)).first()
        return row._asdict() if row else None

    def list(
        self,
        tenant_id: str,
        *,
        collection: str | None = None,
        states: Sequence[str] = ("indexed",),
        limit: int = 50,
        cursor: str | None = None,
        wanted: GalleryFilter | None = None,
    ) -> tuple[list[dict], str | None]:
        query = select(media).where(media.c.tenant_id == tenant_id)
        if collection:
            query = query.where(media.c.collection == collection)
        if states:
            query = query.where(media.c.state.in_(states))
        if wanted is not None:
            query = query.where(*conditions(wanted, self.engine.dialect.name))
        return newest_first(
            self.reader, query, media.c.id, limit=limit, cursor=cursor, prefix="med_"
        )

    def mark_indexed(
        self,
        media_id: str,
        *,
        keys: dict[str, str],
        embedding: np.ndarray | None,
        embedding_model: str | None,
        embedding_version: str | None,
        labels: list[dict],
    ) -> dict | None:
        """The job finished storing and embedding: record it and log the index addition."""
        now = time.time()
        with self.engine.begin() as conn:
            row = conn.execute(
                update(media)
                .where(media.c.id == media_id)
                .values(
                    state="indexed",
                    original_key=keys["original"],
                    normalized_key=keys["normalized"],
                    thumbnail_key=keys["thumbnail"],
                    embedding=None if embedding is None else vector_to_bytes(embedding),
                    embedding_model=embedding_model,
                    embedding_version=embedding_version,
                    labels=labels,
                    indexed_at=now,
                    updated_at=now,
                )
                .returning(*media.c)
            ).first()
            if row is None:  # deleted meanwhile
                return None
            self.log(conn, row.tenant_id, row.collection, [media_id], "add", now)
        return row._asdict()

    def add_synced(
        self,
        conn,
        tenant_id: str,
        collection: str,
        items: Sequence[dict],
        *,
        embedding_model: str | None,
        embedding_version: str | None,
    ) -> None:
        """Media a backfill stored and embedded (each item: media_id, sha256, phash, width,
        height, format, size, metadata, keys, embedding or None, labels): rows inserted indexed
        and synced (DupMedia's synced_at: never uploaded twice), their index additions logged,
        in the caller's transaction, so a killed run leaves each row whole or absent."""
        now = time.time()
        rows = [
            dict.fromkeys(media.c.keys())
            | {
                "id": item["media_id"],
                "tenant_id": tenant_id,
                "collection": collection,
                "index_id": index_id(item["media_id"]),
                "state": "indexed",
                "sha256": item["sha256"],
                "phash": item["phash"],
                "phash_variants": item.get("phash_variants"),
                "width": item["width"],
                "height": item["height"],
                "format": item["format"],
                "bytes": item["size"],
                "metadata": item["metadata"],
                "labels": item["labels"],
                "original_key": item["keys"]["original"],
                "normalized_key": item["keys"]["normalized"],
                "thumbnail_key": item["keys"]["thumbnail"],
                "embedding": None
                if item["embedding"] is None
                else vector_to_bytes(item["embedding"]),
                "embedding_model": embedding_model,
                "embedding_version": embedding_version,
                "created_at": now,
                "updated_at": now,
                "indexed_at": now,
                "synced_at": now,
            }
            for item in items
        ]
        if not rows:
            return
        conn.execute(insert(media), rows)
        self.log(conn, tenant_id, collection, [row["id"] for row in rows], "add", now)

    def delete(self, media_id: str, tenant_id: str, *, state: str | None = None) -> dict | None:
        """Remove the row and its faces, and queue the deletion of its objects (renditions,
        face thumbnails, its original: see busque.media.janitor) in the same transaction.
        Returns the row, with `face_keys` and `deletions` (the queued ids, for the caller to
        sweep at once), or None if there was none (in that `state`, when one is given)."""
        from busque.faces.store import FaceStore

        now = time.time()
        with self.engine.begin() as conn:
            if state is not None:
                found = conn.execute(
                    select(media.c.id).where(
                        media.c.id == media_id,
                        media.c.tenant_id == tenant_id,
                        media.c.state == state,
                    )
                ).first()
                if found is None:
                    return None
            face_keys = FaceStore(self.engine).drop_faces_of_media(conn, tenant_id, media_id)
            row = conn.execute(
                delete(media)
                .where(media.c.id == media_id, media.c.tenant_id == tenant_id)
                .returning(*media.c)
            ).first()
            if row is None:
                return None
            self.log(conn, tenant_id, row.collection, [media_id], "remove", now)
            keys = media_keys(tenant_id, row._asdict())
            deletions = queue_deletions(
                conn, tenant_id, [keys["normalized"], keys["thumbnail"], *face_keys]
            )
            deletions += queue_deletions(conn, tenant_id, [keys["original"]], sha256=row.sha256)
        return {**row._asdict(), "face_keys": face_keys, "deletions": deletions}

    def log(
        self, conn, tenant_id: str, collection: str, media_ids: Sequence[str], op: str, now: float
    ):
        """The index change log (the Matchers replay it): one `op` row per media id."""
        conn.execute(
            insert(media_changes),
            [
                {
                    "tenant_id": tenant_id,
                    "collection": collection,
                    "media_id": media_id,
                    "op": op,
                    "created_at": now,
                }
                for media_id in media_ids
            ],
        )

    def changes_since(
        self,
        tenant_id: str,
        collection: str,
        after_id: int,
        also_ids: Sequence[int] = (),
        limit: int = 10_000,
    ) -> list[dict]:
        """Index changes after a log id (plus some earlier ids that may have committed late),
        with each added media's vector and hashes. A removed media's row is gone: its
        index_id comes from the media id itself."""
        query = (
            select(
                media_changes.c.id,
                media_changes.c.media_id,
                media_changes.c.op,
                media.c.index_id,
                media.c.embedding,
                media.c.phash,
                media.c.sha256,
            )
            .outerjoin(media, media.c.id == media_changes.c.media_id)
            .where(
                media_changes.c.tenant_id == tenant_id,
                media_changes.c.collection == collection,
                or_(media_changes.c.id > after_id, media_changes.c.id.in_(list(also_ids))),
            )
            .order_by(media_changes.c.id)
            .limit(limit)
        )
        with self.reader.connect() as conn:
            rows = [r._asdict() for r in conn.execute(query)]
        for row in rows:
            row["index_id"] = index_id(row["media_id"])
        return rows

    def last_change(self, tenant_id: str, collection: str) -> int:
        """The newest change-log id of a collection (0 when it has none)."""
        with self.reader.connect() as conn:
            return (
                conn.execute(
                    select(func.max(media_changes.c.id)).where(
                        media_changes.c.tenant_id == tenant_id,
                        media_changes.c.collection == collection,
                    )
                ).scalar()
                or 0
            )

    def indexed_rows(
        self, tenant_id: str, collection: str, *, after: str = "", limit: int = 1000
    ) -> list[dict]:
        """A page (by media id) of the collection's indexed media: what an index is built of."""
        query = (
            select(
                media.c.id,
                media.c.index_id,
                media.c.embedding,
                media.c.phash,
                media.c.sha256,
                media.c.original_key,
                media.c.normalized_key,
            )
            .where(
                media.c.tenant_id == tenant_id,
                media.c.collection == collection,
                media.c.state == "indexed",
                media.c.id > after,
            )
            .order_by(media.c.id)
            .limit(limit)
        )
        with self.reader.connect() as conn:
            return [r._asdict() for r in conn.execute(query)]

    def set_embeddings(
        self,
        updates: Sequence[tuple[str, np.ndarray, list[dict], bytes | None]],
        model: str,
        version: str,
    ) -> int:
        """Store recomputed (media_id, vector, labels, turns' pHashes or None: kept); returns
        how many rows still existed."""
        now = time.time()
        done = 0
        with self.engine.begin() as conn:
            for media_id, vector, labels, variants in updates:
                values = {
                    "embedding": vector_to_bytes(vector),
                    "embedding_model": model,
                    "embedding_version": version,
                    "labels": labels,
                    "updated_at": now,
                }
                if variants is not None:
                    values["phash_variants"] = variants
                done += conn.execute(
                    update(media).where(media.c.id == media_id).values(**values)
                ).rowcount
        return done

    def existing(self, tenant_id: str, media_ids: Sequence[str]) -> set[str]:
        """Those of `media_ids` the tenant has a row for."""
        if not media_ids:
            return set()
        query = select(media.c.id).where(
            media.c.tenant_id == tenant_id, media.c.id.in_(list(media_ids))
        )
        with self.reader.connect() as conn:
            return set(conn.scalars(query))

    def by_index_ids(self, tenant_id: str, ids: Sequence[int]) -> dict[int, dict]:
        if not ids:
            return {}
        # Every column but the embedding (5 KB a row at 1280 dimensions; callers show rows).
        columns = [c for c in media.c if c.name != "embedding"]
        query = select(*columns).where(
            media.c.tenant_id == tenant_id,
            media.c.index_id.in_(list(ids)),
            media.c.state == "indexed",  # not one trashed since the index last synced
        )
        with self.reader.connect() as conn:
            return {r.index_id: r._asdict() for r in conn.execute(query)}

    def collections(self, tenant_id: str) -> list[dict]:
        query = (
            select(media.c.collection, func.count().label("media"))
            .where(media.c.tenant_id == tenant_id, media.c.state == "indexed")
            .group_by(media.c.collection)
            .order_by(media.c.collection)
        )
        with self.reader.connect() as conn:
            return [r._asdict() for r in conn.execute(query)]

    def exact_duplicates(self, tenant_id: str, collection: str | None = None) -> list[list[str]]:
        """Groups of media ids with identical bytes (sha256)."""
        scope = [media.c.tenant_id == tenant_id, media.c.state == "indexed"]
        if collection:
            scope.append(media.c.collection == collection)
        shared = (
            select(media.c.sha256).where(*scope).group_by(media.c.sha256).having(func.count() > 1)
        )
        query = select(media.c.sha256, media.c.id).where(*scope, media.c.sha256.in_(shared))
        groups: dict[str, list[str]] = {}
        with self.reader.connect() as conn:
            for sha, media_id in conn.execute(query.order_by(media.c.sha256, media.c.id)):
                groups.setdefault(sha, []).append(media_id)
        return list(groups.values())

    def phash_variants(
        self, tenant_id: str, collection: str, index_ids: Sequence[int] | None = None
    ) -> dict[int, list[int]]:
        """index id -> the pHashes of the item's turns and mirrors (busque.media.phash
        .TRANSFORMS), for the collection's indexed items that have them (of `index_ids` only,
        when given)."""
        query = select(media.c.index_id, media.c.phash_variants).where(
            media.c.tenant_id == tenant_id,
            media.c.collection == collection,
            media.c.state == "indexed",
            media.c.phash_variants.is_not(None),
        )
        chunks: list = [None]
        if index_ids is not None:
            chunks = [index_ids[at : at + 500] for at in range(0, len(index_ids), 500)]
        found = {}
        with self.reader.connect() as conn:
            for chunk in chunks:
                some = query if chunk is None else query.where(media.c.index_id.in_(chunk))
                found |= {i: variants_from_bytes(codes) for i, codes in conn.execute(some)}
        return found

    def sha256_of(self, tenant_id: str, index_ids: Sequence[int]) -> set[str]:
        """The bytes (sha256) of these items, whatever their state."""
        found = set()
        with self.reader.connect() as conn:
            for at in range(0, len(index_ids), 500):
                found |= set(
                    conn.scalars(
                        select(media.c.sha256).where(
                            media.c.tenant_id == tenant_id,
                            media.c.index_id.in_(index_ids[at : at + 500]),
                        )
                    )
                )
        return found

    def exact_groups(
        self, tenant_id: str, collection: str, shas: Iterable[str] | None = None
    ) -> list[dict]:
        """Every set of identical bytes in a collection (of these bytes only, given `shas`),
        with every path a backfill found them at: several media rows with one sha256, or one
        row whose bytes were found at several paths (a backfill stores exact duplicates once).
        Largest savings first."""
        scope = [
            media.c.tenant_id == tenant_id,
            media.c.state == "indexed",
            media.c.collection == collection,
        ]
        if shas is not None:
            scope.append(media.c.sha256.in_(sorted(shas)))
        several_rows = (
            select(media.c.sha256).where(*scope).group_by(media.c.sha256).having(func.count() > 1)
        )
        several_paths = (
            select(library_files.c.sha256)
            .join(media, media.c.id == library_files.c.media_id)
            .where(*scope)
            .group_by(library_files.c.sha256)
            .having(func.count() > 1)
        )
        groups: dict[str, dict] = {}
        # The shared sha256s first (from indices), then their rows: an IN over a subquery
        # makes SQLite read every row of the collection.
        with self.reader.connect() as conn:
            shas = sorted(conn.scalars(union(several_rows, several_paths)))
            for at in range(0, len(shas), 500):
                chunk = shas[at : at + 500]
                rows = conn.execute(
                    select(media.c.sha256, media.c.id, media.c.bytes).where(
                        *scope, media.c.sha256.in_(chunk)
                    )
                )
                for sha, media_id, size in sorted(rows, key=lambda r: r.id):
                    group = groups.setdefault(
                        sha, {"sha256": sha, "bytes": size, "media_ids": [], "files": []}
                    )
                    group["media_ids"].append(media_id)
                files = conn.execute(
                    select(
                        library_files.c.media_id,
                        library_files.c.library,
                        library_files.c.path,
                        media.c.sha256,
                    )
                    .join(media, media.c.id == library_files.c.media_id)
                    .where(*scope, media.c.sha256.in_(chunk))
                )
                for media_id, library, path, sha in sorted(files, key=lambda f: (f[1], f[2])):
                    groups[sha]["files"].append(
                        {"media_id": media_id, "library": library, "path": path}
                    )
        for group in groups.values():
            copies = max(len(group["media_ids"]), len(group["files"]))
            group["copies"] = copies
            group["savings_bytes"] = group["bytes"] * (copies - 1)
        return sorted(groups.values(), key=lambda g: (-g["savings_bytes"], g["sha256"]))


def lock_bytes(conn, engine: Engine, tenant_id: str, sha256: str) -> None:
    """Serialise, until the transaction ends, the inserts of a tenant's media with these bytes
    and the deletion of their shared original. On SQLite every writer holds the database's lock
    already (BEGIN IMMEDIATE)."""
    if is_postgres(engine):
        digest = hashlib.sha256(f"{tenant_id}/{sha256}".encode()).digest()
        key = int.from_bytes(digest[:8], "big", signed=True)
        conn.execute(select(func.pg_advisory_xact_lock(key)))


def media_keys(tenant_id: str, row: dict) -> dict[str, str]:
    """A media item's object keys. A pending row records none yet; its job writes them where
    storage_keys says."""
    keys = storage_keys(tenant_id, row["id"], row["sha256"], row["format"])
    return {name: row[f"{name}_key"] or key for name, key in keys.items()}
