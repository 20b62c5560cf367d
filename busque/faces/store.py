"""Faces and people in the SQL store (per-collection options: busque.media.collections).

Every face of a media item is written in one transaction (replacing what an earlier attempt
wrote, so a retried job never duplicates faces). People changes (clustering, rename, merge, move)
hold the tenant's people lock: a row lock on PostgreSQL, SQLite's single writer otherwise, so two
jobs never cluster the same faces at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, delete, func, insert, or_, select, update

from busque.db.engine import is_postgres, readonly
from busque.db.pages import decode_cursor, encode_cursor, newest_first
from busque.db.schema import faces, media, people, tenants
from busque.ids import new_id


class Conflict(ValueError):
    """A change that would put two faces of one photo in the same person."""


def face_view(row: Any) -> dict:
    r = row._asdict() if hasattr(row, "_asdict") else dict(row)
    r["box"] = [r.pop("x"), r.pop("y"), r.pop("w"), r.pop("h")]
    r.pop("embedding", None)
    return r


def to_vector(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4")


class FaceStore:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.reader = readonly(engine)

    # ---- faces ----

    def replace_faces(
        self, tenant_id: str, media_id: str, found: Sequence[dict], model: str, conn=None
    ) -> tuple[list[dict], list[str]] | None:
        """Store a media item's faces (each: id, box, score, embedding, landmarks,
        thumbnail_key, and for a video frame_s), dropping any it had. Returns (the new rows with
        their seq, thumbnail keys of the replaced faces), or None when the media item is gone.
        In the caller's transaction when `conn` is given."""
        if conn is None:
            with self.engine.begin() as conn:
                return self.replace_faces(tenant_id, media_id, found, model, conn)
        now = time.time()
        exists = conn.execute(
            select(media.c.id).where(media.c.id == media_id, media.c.tenant_id == tenant_id)
        ).first()
        if exists is None:
            return None
        old = conn.execute(
            delete(faces)
            .where(faces.c.media_id == media_id)
            .returning(faces.c.thumbnail_key, faces.c.person_id)
        ).all()
        rows = []
        for face in found:
            x, y, w, h = (int(v) for v in face["box"])
            values = {
                "id": face["id"],
                "tenant_id": tenant_id,
                "media_id": media_id,
                "person_id": None,
                "x": x,
                "y": y,
                "w": w,
                "h": h,
                "score": float(face["score"]),
                "embedding": np.asarray(face["embedding"], dtype="<f4").tobytes(),
                "landmarks": face.get("landmarks") or [],
                "thumbnail_key": face.get("thumbnail_key"),
                "model": model,
                "created_at": now,
                "frame_s": face.get("frame_s"),
            }
            seq = conn.execute(insert(faces).values(values).returning(faces.c.seq)).scalar()
            rows.append(face_view({**values, "seq": seq}))
        self._drop_empty_people(conn, tenant_id, {r.person_id for r in old} - {None})
        conn.execute(update(media).where(media.c.id == media_id).values(faces_at=now))
        return rows, [r.thumbnail_key for r in old if r.thumbnail_key]

    def media_to_analyze(
        self,
        tenant_id: str,
        *,
        media_ids: Sequence[str] | None = None,
        collection: str | None = None,
        missing_only: bool = False,
        limit: int = 1000,
    ) -> list[dict]:
        """Indexed media of the tenant to analyse: by id, or a collection's (oldest first)."""
        query = select(media.c.id, media.c.collection, media.c.original_key).where(
            media.c.tenant_id == tenant_id, media.c.state == "indexed"
        )
        if media_ids is not None:
            query = query.where(media.c.id.in_(list(media_ids)))
        if collection:
            query = query.where(media.c.collection == collection)
        if missing_only:
            query = query.where(media.c.faces_at.is_(None))
        with self.reader.connect() as conn:
            rows = conn.execute(query.order_by(media.c.id).limit(limit)).all()
        return [r._asdict() for r in rows]

    def faces_of_media(self, tenant_id: str, media_ids: Sequence[str]) -> dict[str, list[dict]]:
        if not media_ids:
            return {}
        with self.reader.connect() as conn:
            rows = conn.execute(
                select(faces)
                .where(faces.c.tenant_id == tenant_id, faces.c.media_id.in_(list(media_ids)))
                .order_by(faces.c.seq)
            ).all()
        grouped: dict[str, list[dict]] = {m: [] for m in media_ids}
        for row in rows:
            grouped[row.media_id].append(face_view(row))
        return grouped

    def list_faces(
        self,
        tenant_id: str,
        *,
        unassigned: bool = False,
        person_id: str | None = None,
        media_id: str | None = None,
        collection: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[dict], str | None]:
        """The tenant's faces, newest first: only those in no person (`unassigned`), of one
        person, of one photo, or of one collection's photos."""
        columns = [c for c in faces.c if c.name != "embedding"]
        query = select(*columns).where(faces.c.tenant_id == tenant_id)
        if unassigned:
            query = query.where(faces.c.person_id.is_(None))
        if person_id is not None:
            query = query.where(faces.c.person_id == person_id)
        if media_id is not None:
            query = query.where(faces.c.media_id == media_id)
        if collection is not None:
            query = query.join(media, media.c.id == faces.c.media_id).where(
                media.c.collection == collection
            )
        rows, next_cursor = newest_first(
            self.reader, query, faces.c.id, limit=limit, cursor=cursor, prefix="face_"
        )
        return [face_view(row) for row in rows], next_cursor

    def get_face(self, tenant_id: str, face_id: str) -> dict | None:
        with self.reader.connect() as conn:
            row = conn.execute(
                select(faces).where(faces.c.tenant_id == tenant_id, faces.c.id == face_id)
            ).first()
        return face_view(row) if row else None

    def faces_by_seq(self, tenant_id: str, seqs: Iterable[int]) -> dict[int, dict]:
        seqs = [int(s) for s in seqs]
        if not seqs:
            return {}
        with self.reader.connect() as conn:
            rows = conn.execute(
                select(faces).where(faces.c.tenant_id == tenant_id, faces.c.seq.in_(seqs))
            ).all()
        return {r.seq: face_view(r) for r in rows}

    def embeddings_after(
        self, tenant_id: str, after: int, recheck: Sequence[int] = (), limit: int = 10_000
    ) -> list[tuple[int, str, np.ndarray]]:
        """(seq, media_id, embedding) of the tenant's faces with seq > after (or in recheck),
        in seq order: what a face index follows."""
        condition = faces.c.seq > after
        if recheck:
            condition = condition | faces.c.seq.in_(list(recheck))
        with self.reader.connect() as conn:
            rows = conn.execute(
                select(faces.c.seq, faces.c.media_id, faces.c.embedding)
                .where(faces.c.tenant_id == tenant_id, condition)
                .order_by(faces.c.seq)
                .limit(limit)
            ).all()
        return [(r.seq, r.media_id, to_vector(r.embedding)) for r in rows]

    # ---- people ----

    @contextmanager
    def people_lock(self, tenant_id: str):
        """A write transaction holding the tenant's people lock."""
        with self.engine.begin() as conn:
            if is_postgres(self.engine):
                conn.execute(
                    select(tenants.c.id).where(tenants.c.id == tenant_id).with_for_update()
                )
            yield conn

    def list_people(
        self, tenant_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[dict], str | None]:
        counts = (
            select(faces.c.person_id, func.count().label("face_count"))
            .where(faces.c.tenant_id == tenant_id, faces.c.person_id.is_not(None))
            .group_by(faces.c.person_id)
            .subquery()
        )
        cover = faces.alias("cover")
        query = (
            select(
                people,
                func.coalesce(counts.c.face_count, 0).label("face_count"),
                cover.c.thumbnail_key.label("cover_thumbnail_key"),
            )
            .outerjoin(counts, counts.c.person_id == people.c.id)
            .outerjoin(cover, cover.c.id == people.c.cover_face_id)
            .where(people.c.tenant_id == tenant_id)
        )
        return newest_first(
            self.reader, query, people.c.id, limit=limit, cursor=cursor, prefix="per_"
        )

    def get_person(self, tenant_id: str, person_id: str) -> dict | None:
        cover = faces.alias("cover")
        with self.reader.connect() as conn:
            row = conn.execute(
                select(people, cover.c.thumbnail_key.label("cover_thumbnail_key"))
                .outerjoin(cover, cover.c.id == people.c.cover_face_id)
                .where(people.c.tenant_id == tenant_id, people.c.id == person_id)
            ).first()
            if row is None:
                return None
            count = conn.execute(
                select(func.count()).select_from(faces).where(faces.c.person_id == person_id)
            ).scalar()
        return {**row._asdict(), "face_count": count}

    def people_names(self, tenant_id: str, person_ids: Iterable[str]) -> dict[str, str | None]:
        ids = list(set(person_ids))
        if not ids:
            return {}
        with self.reader.connect() as conn:
            rows = conn.execute(
                select(people.c.id, people.c.name).where(
                    people.c.tenant_id == tenant_id, people.c.id.in_(ids)
                )
            ).all()
        return {r.id: r.name for r in rows}

    def rename(self, tenant_id: str, person_id: str, name: str | None) -> dict | None:
        with self.engine.begin() as conn:
            done = conn.execute(
                update(people)
                .where(people.c.tenant_id == tenant_id, people.c.id == person_id)
                .values(name=name, updated_at=time.time())
            ).rowcount
        return self.get_person(tenant_id, person_id) if done else None

    def person_media(
        self, tenant_id: str, person_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[str], str | None]:
        query = (
            select(faces.c.media_id)
            .where(faces.c.tenant_id == tenant_id, faces.c.person_id == person_id)
            .distinct()
        )
        if cursor:
            query = query.where(faces.c.media_id < decode_cursor(cursor, prefix="med_"))
        with self.reader.connect() as conn:
            ids = list(
                conn.execute(query.order_by(faces.c.media_id.desc()).limit(limit + 1)).scalars()
            )
        more = len(ids) > limit
        ids = ids[:limit]
        return ids, encode_cursor(ids[-1]) if more and ids else None

    def merge(self, tenant_id: str, target_id: str, source_id: str) -> dict | None:
        """Move every face of `source` to `target` and delete `source`."""
        with self.people_lock(tenant_id) as conn:
            found = self._people(conn, tenant_id, [target_id, source_id])
            if len(found) != 2:
                return None
            shared = (
                conn.execute(
                    select(faces.c.media_id)
                    .where(faces.c.person_id == target_id)
                    .intersect(select(faces.c.media_id).where(faces.c.person_id == source_id))
                )
                .scalars()
                .all()
            )
            if shared:
                raise Conflict(
                    f"{target_id} and {source_id} both appear in {shared[0]}: two faces of one "
                    "photo are never the same person"
                )
            conn.execute(
                update(faces).where(faces.c.person_id == source_id).values(person_id=target_id)
            )
            conn.execute(delete(people).where(people.c.id == source_id))
            conn.execute(
                update(people).where(people.c.id == target_id).values(updated_at=time.time())
            )
        return self.get_person(tenant_id, target_id)

    def move_face(self, tenant_id: str, face_id: str, person_id: str | None) -> dict | None:
        """Assign a face to a person (None: to nobody; "new": to a new person of its own)."""
        with self.people_lock(tenant_id) as conn:
            face = conn.execute(
                select(faces).where(faces.c.tenant_id == tenant_id, faces.c.id == face_id)
            ).first()
            if face is None:
                return None
            if person_id == "new":
                person_id = self.create_person(conn, tenant_id, face.id)
            elif person_id is not None:
                if not self._people(conn, tenant_id, [person_id]):
                    return None
                self.check_free(conn, person_id, face.media_id, face.id)
            conn.execute(update(faces).where(faces.c.seq == face.seq).values(person_id=person_id))
            if face.person_id and face.person_id != person_id:
                self._drop_empty_people(conn, tenant_id, {face.person_id})
        return self.get_face(tenant_id, face_id)

    # Used inside people_lock() transactions (also by busque.faces.people).

    def create_person(self, conn: Connection, tenant_id: str, cover_face_id: str) -> str:
        now = time.time()
        person_id = new_id("per")
        conn.execute(
            insert(people).values(
                id=person_id,
                tenant_id=tenant_id,
                name=None,
                cover_face_id=cover_face_id,
                created_at=now,
                updated_at=now,
            )
        )
        return person_id

    def check_free(self, conn: Connection, person_id: str, media_id: str, face_id: str) -> None:
        other = conn.execute(
            select(faces.c.id).where(
                faces.c.person_id == person_id, faces.c.media_id == media_id, faces.c.id != face_id
            )
        ).first()
        if other is not None:
            raise Conflict(
                f"{person_id} already has face {other.id} in {media_id}: two faces of one photo "
                "are never the same person"
            )

    def people_of(self, conn: Connection, seqs: Iterable[int]) -> dict[int, dict]:
        """seq -> {id, person_id, media_id}, read inside the lock (assignments change)."""
        seqs = [int(s) for s in seqs]
        if not seqs:
            return {}
        rows = conn.execute(
            select(faces.c.seq, faces.c.id, faces.c.person_id, faces.c.media_id).where(
                faces.c.seq.in_(seqs)
            )
        ).all()
        return {r.seq: {"id": r.id, "person_id": r.person_id, "media_id": r.media_id} for r in rows}

    def people_in_media(self, conn: Connection, media_ids: Iterable[str]) -> dict[str, set[str]]:
        ids = list(set(media_ids))
        if not ids:
            return {}
        rows = conn.execute(
            select(faces.c.media_id, faces.c.person_id).where(
                faces.c.media_id.in_(ids), faces.c.person_id.is_not(None)
            )
        ).all()
        taken: dict[str, set[str]] = {}
        for row in rows:
            taken.setdefault(row.media_id, set()).add(row.person_id)
        return taken

    def assign(self, conn: Connection, seq: int, person_id: str) -> None:
        conn.execute(update(faces).where(faces.c.seq == seq).values(person_id=person_id))

    def _people(self, conn: Connection, tenant_id: str, ids: Sequence[str]) -> list[str]:
        return list(
            conn.execute(
                select(people.c.id).where(people.c.tenant_id == tenant_id, people.c.id.in_(ids))
            ).scalars()
        )

    def _drop_empty_people(self, conn: Connection, tenant_id: str, person_ids: set[str]) -> None:
        """People left with no face go; a person whose cover face went gets another."""
        for person_id in person_ids:
            first = conn.execute(
                select(faces.c.id)
                .where(faces.c.person_id == person_id)
                .order_by(faces.c.score.desc())
                .limit(1)
            ).scalar()
            if first is None:
                conn.execute(
                    delete(people).where(people.c.tenant_id == tenant_id, people.c.id == person_id)
                )
            else:
                conn.execute(
                    update(people)
                    .where(
                        people.c.id == person_id,
                        or_(
                            people.c.cover_face_id.is_(None),
                            ~people.c.cover_face_id.in_(
                                select(faces.c.id).where(faces.c.person_id == person_id)
                            ),
                        ),
                    )
                    .values(cover_face_id=first)
                )

    def drop_faces_of_media(self, conn: Connection, tenant_id: str, media_id: str) -> list[str]:
        """Inside a media delete: remove its faces; returns their thumbnail keys."""
        old = conn.execute(
            delete(faces)
            .where(faces.c.tenant_id == tenant_id, faces.c.media_id == media_id)
            .returning(faces.c.thumbnail_key, faces.c.person_id)
        ).all()
        self._drop_empty_people(conn, tenant_id, {r.person_id for r in old} - {None})
        return [r.thumbnail_key for r in old if r.thumbnail_key]
