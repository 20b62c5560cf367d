"""Duplicates resolved: keep one (or several) of a group, trash the rest, undo; "not duplicates"
remembered by the pair's bytes; the trash (restore, purge, purged after media.trash_days).

A trashed item leaves the index (the catalog's change log: the Matchers drop it) and every list,
search and duplicate group, but keeps its row and objects until it is purged; a purge deletes
them as a DELETE does, and a content-addressed original that another item shares stays
(busque.media.janitor). The item kept takes the union of the group's metadata (its own values
win), every library path the others were found at, and the people their faces show. A
resolution records what it changed, so undo restores exactly the state before it, as long as
nothing it trashed was purged.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

from sqlalchemy import Engine, and_, insert, select, update

from busque.db.engine import is_postgres, readonly
from busque.db.pages import newest_first
from busque.db.schema import (
    duplicate_decisions,
    faces,
    library_files,
    media,
    resolutions,
    tenants,
)
from busque.ids import new_id
from busque.media.catalog import Catalog
from busque.media.duplicate_groups import sha_pair
from busque.media.turned_boxes import turn_between, turned_box

# Formats a camera or phone writes: a copy in another format is more likely a re-encoding.
CAMERA_FORMATS = frozenset({"jpeg", "heic", "heif", "dng", "tiff", "mp4", "mov"})


class NotFound(LookupError):
    """Ids that are not the tenant's indexed media of the collection (or no such resolution)."""


class Conflict(ValueError):
    """A change that cannot be made in the state things are in (undone twice, purged)."""


@dataclass(frozen=True)
class Group:
    media_ids: tuple[str, ...]
    keep: tuple[str, ...] | None = None  # None: the suggestion


def suggestion_rank(row: dict) -> tuple:
    """Smaller is better: the largest resolution, then a camera's format, then the earliest
    capture date, then the most metadata, then the first ingested."""
    metadata = row.get("metadata") or {}
    captured = metadata.get("captured_at")
    dated = isinstance(captured, str)
    return (
        -row["width"] * row["height"],
        row["format"] not in CAMERA_FORMATS,
        not dated,
        captured if dated else "",
        -sum(value is not None for value in metadata.values()),
        row["id"],
    )


def suggest(rows: Sequence[dict]) -> str:
    """The id of the item to keep of a group."""
    return min(rows, key=suggestion_rank)["id"]


def _overlap(face: dict, box: list[int]) -> float:
    """Intersection over union of a face row's box and a box (x, y, w, h)."""
    ax, ay, aw, ah = face["x"], face["y"], face["w"], face["h"]
    bx, by, bw, bh = box
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def _lock_people(conn, engine: Engine, tenant_id: str) -> None:
    """Hold the tenant's people lock (busque.faces.store.FaceStore.people_lock) for the
    transaction: a resolution moves faces between photos and names them."""
    if is_postgres(engine):
        conn.execute(select(tenants.c.id).where(tenants.c.id == tenant_id).with_for_update())


class Resolutions:
    def __init__(self, engine: Engine, catalog: Catalog):
        self.engine = engine
        self.reader = readonly(engine)
        self.catalog = catalog

    # ---- resolving ----

    def resolve(self, tenant_id: str, collection: str, groups: Sequence[Group]) -> dict:
        """Keep and trash, all groups in one transaction (all or nothing): NotFound when an id
        is not the tenant's indexed media of the collection."""
        wanted = [media_id for group in groups for media_id in group.media_ids]
        now = time.time()
        resolution_id = new_id("res")
        with self.engine.begin() as conn:
            _lock_people(conn, self.engine, tenant_id)
            rows = {
                r.id: r._asdict()
                for r in conn.execute(
                    select(media).where(
                        media.c.tenant_id == tenant_id,
                        media.c.collection == collection,
                        media.c.state == "indexed",
                        media.c.id.in_(wanted),
                    )
                )
            }
            missing = [media_id for media_id in wanted if media_id not in rows]
            if missing:
                raise NotFound(missing)
            done = []
            for group in groups:
                members = [rows[media_id] for media_id in group.media_ids]
                suggested = suggest(members)
                keep = list(group.keep) if group.keep else [suggested]
                trash = [media_id for media_id in group.media_ids if media_id not in keep]
                done.append(
                    self._resolve_group(conn, tenant_id, resolution_id, members, keep, trash, now)
                )
                done[-1]["suggested"] = suggested
            conn.execute(
                insert(resolutions).values(
                    id=resolution_id, tenant_id=tenant_id, groups=done, created_at=now
                )
            )
            trashed = [media_id for group in done for media_id in group["trashed"]]
            self.catalog.log(conn, tenant_id, collection, trashed, "remove", now)
        return {"resolution_id": resolution_id, "collection": collection, "groups": done}

    def _resolve_group(self, conn, tenant_id, resolution_id, members, keep, trash, now) -> dict:
        by_id = {row["id"]: row for row in members}
        first = by_id[keep[0]]
        # The metadata of the others, oldest first, under the kept item's own.
        merged: dict = {}
        for row in sorted((by_id[i] for i in trash), key=lambda r: r["id"]):
            merged |= row["metadata"] or {}
        merged |= first["metadata"] or {}
        conn.execute(
            update(media).where(media.c.id == first["id"]).values(metadata=merged, updated_at=now)
        )
        faces_moved, people_given = self._unite_faces(conn, first, [by_id[i] for i in trash])
        # Every path the trashed items were found at is now the kept item's.
        files = conn.execute(
            select(library_files.c.id, library_files.c.media_id).where(
                library_files.c.tenant_id == tenant_id, library_files.c.media_id.in_(trash)
            )
        ).all()
        if files:
            conn.execute(
                update(library_files)
                .where(library_files.c.id.in_([file_id for file_id, _ in files]))
                .values(media_id=first["id"])
            )
        if trash:
            conn.execute(
                update(media)
                .where(media.c.id.in_(trash))
                .values(
                    state="trashed", trashed_at=now, resolution_id=resolution_id, updated_at=now
                )
            )
        return {
            "kept": keep,
            "trashed": trash,
            "metadata_before": {first["id"]: first["metadata"]},
            "files_moved": [[file_id, media_id] for file_id, media_id in files],
            "faces_moved": faces_moved,
            "people_given": people_given,
        }

    def _unite_faces(self, conn, kept: dict, trashed: list[dict]) -> tuple[list, list]:
        """The people of the trashed items' faces, onto the kept item: a face of a person the
        kept item does not show yet names the kept item's unnamed face at the same place
        (boxes turned with a rotated or mirrored copy, scaled to the kept item's size,
        overlapping by half), else moves to it. Never two faces of one person in one photo.
        Returns what undo needs: (moved faces: [id, media id, box before], faces given a
        person: [id])."""
        own = [
            dict(r._mapping)
            for r in conn.execute(select(faces).where(faces.c.media_id == kept["id"]))
        ]
        shown = {face["person_id"] for face in own if face["person_id"]}
        moved, given = [], []
        for row in trashed:
            theirs = conn.execute(
                select(faces)
                .where(faces.c.media_id == row["id"], faces.c.person_id.is_not(None))
                .order_by(faces.c.seq)
            ).all()
            turn = turn_between(row, kept)  # a rotated or mirrored copy: its boxes turn too
            for face in theirs:
                if face.person_id in shown:
                    continue
                (x, y, w, h), (width, height) = turned_box(
                    (face.x, face.y, face.w, face.h), (row["width"], row["height"]), turn
                )
                sx, sy = kept["width"] / max(width, 1), kept["height"] / max(height, 1)
                box = [round(x * sx), round(y * sy), round(w * sx), round(h * sy)]
                same_place = [f for f in own if _overlap(f, box) >= 0.5]
                if any(f["person_id"] for f in same_place):
                    continue  # the kept item names someone else there: its word stands
                if same_place:
                    target = same_place[0]
                    conn.execute(
                        update(faces)
                        .where(faces.c.id == target["id"])
                        .values(person_id=face.person_id)
                    )
                    target["person_id"] = face.person_id
                    given.append(target["id"])
                else:
                    x, y, w, h = box
                    conn.execute(
                        update(faces)
                        .where(faces.c.id == face.id)
                        .values(media_id=kept["id"], x=x, y=y, w=w, h=h)
                    )
                    moved.append([face.id, row["id"], [face.x, face.y, face.w, face.h]])
                shown.add(face.person_id)
        return moved, given

    def undo(self, tenant_id: str, resolution_id: str) -> dict:
        """Restore the state before a resolution: its trashed items back in the index, the kept
        items' metadata and the moved paths as they were. Conflict when it was undone already
        or an item it trashed was purged or restored meanwhile."""
        now = time.time()
        with self.engine.begin() as conn:
            _lock_people(conn, self.engine, tenant_id)
            found = conn.execute(
                select(resolutions).where(
                    resolutions.c.id == resolution_id, resolutions.c.tenant_id == tenant_id
                )
            ).first()
            if found is None:
                raise NotFound([resolution_id])
            if found.undone_at is not None:
                raise Conflict(f"resolution {resolution_id} was undone already")
            trashed = [media_id for group in found.groups for media_id in group["trashed"]]
            still = {
                r.id: r.collection
                for r in conn.execute(
                    select(media.c.id, media.c.collection).where(
                        media.c.id.in_(trashed),
                        media.c.state == "trashed",
                        media.c.resolution_id == resolution_id,
                    )
                )
            }
            gone = [media_id for media_id in trashed if media_id not in still]
            if gone:
                raise Conflict(f"purged or restored since the resolution: {', '.join(gone)}")
            for group in found.groups:
                for media_id, before in group["metadata_before"].items():
                    conn.execute(
                        update(media)
                        .where(media.c.id == media_id, media.c.tenant_id == tenant_id)
                        .values(metadata=before, updated_at=now)
                    )
                for face_id, media_id, (x, y, w, h) in group.get("faces_moved", []):
                    conn.execute(
                        update(faces)
                        .where(faces.c.id == face_id)
                        .values(media_id=media_id, x=x, y=y, w=w, h=h)
                    )
                for face_id in group.get("people_given", []):
                    conn.execute(update(faces).where(faces.c.id == face_id).values(person_id=None))
                for file_id, media_id in group["files_moved"]:
                    conn.execute(
                        update(library_files)
                        .where(library_files.c.id == file_id)
                        .values(media_id=media_id)
                    )
            if trashed:
                conn.execute(
                    update(media)
                    .where(media.c.id.in_(trashed))
                    .values(state="indexed", trashed_at=None, resolution_id=None, updated_at=now)
                )
                for collection in set(still.values()):
                    ids = [i for i in trashed if still[i] == collection]
                    self.catalog.log(conn, tenant_id, collection, ids, "add", now)
            conn.execute(
                update(resolutions).where(resolutions.c.id == resolution_id).values(undone_at=now)
            )
        return {"resolution_id": resolution_id, "restored": trashed}

    # ---- "not duplicates" ----

    def not_duplicates(self, tenant_id: str, media_ids: Sequence[str]) -> int:
        """Remember every pair of these items (by their bytes) as not duplicates; NotFound for
        an id that is not the tenant's. Returns how many pairs are new."""
        now = time.time()
        with self.engine.begin() as conn:
            shas = dict(
                conn.execute(
                    select(media.c.id, media.c.sha256).where(
                        media.c.tenant_id == tenant_id, media.c.id.in_(list(media_ids))
                    )
                ).all()
            )
            missing = [media_id for media_id in media_ids if media_id not in shas]
            if missing:
                raise NotFound(missing)
            pairs = {sha_pair(shas[a], shas[b]) for a, b in combinations(media_ids, 2)}
            pairs = {(a, b) for a, b in pairs if a != b}  # the same bytes are always duplicates
            known = self._decided(conn, tenant_id, {sha for p in pairs for sha in p})
            new = sorted(pairs - known)
            if new:
                conn.execute(
                    insert(duplicate_decisions),
                    [
                        {"tenant_id": tenant_id, "sha256_a": a, "sha256_b": b, "created_at": now}
                        for a, b in new
                    ],
                )
        return len(new)

    def decided(self, tenant_id: str, shas: set[str]) -> set[tuple[str, str]]:
        """The pairs among these bytes that were decided not to be duplicates."""
        with self.reader.connect() as conn:
            return self._decided(conn, tenant_id, shas)

    def _decided(self, conn, tenant_id: str, shas: set[str]) -> set[tuple[str, str]]:
        if not shas:
            return set()
        rows = conn.execute(
            select(duplicate_decisions.c.sha256_a, duplicate_decisions.c.sha256_b).where(
                duplicate_decisions.c.tenant_id == tenant_id,
                duplicate_decisions.c.sha256_a.in_(list(shas)),
                duplicate_decisions.c.sha256_b.in_(list(shas)),
            )
        )
        return {(a, b) for a, b in rows}

    # ---- the trash ----

    def trashed(
        self, tenant_id: str, *, collection: str | None, limit: int, cursor: str | None
    ) -> tuple[list[dict], str | None]:
        query = select(media).where(media.c.tenant_id == tenant_id, media.c.state == "trashed")
        if collection:
            query = query.where(media.c.collection == collection)
        return newest_first(
            self.reader, query, media.c.id, limit=limit, cursor=cursor, prefix="med_"
        )

    def restore(self, tenant_id: str, media_id: str) -> dict | None:
        """A trashed item back in the index (its resolution can no longer be undone); None when
        the tenant has no such trashed item."""
        now = time.time()
        with self.engine.begin() as conn:
            row = conn.execute(
                update(media)
                .where(
                    media.c.id == media_id,
                    media.c.tenant_id == tenant_id,
                    media.c.state == "trashed",
                )
                .values(state="indexed", trashed_at=None, resolution_id=None, updated_at=now)
                .returning(*media.c)
            ).first()
            if row is None:
                return None
            self.catalog.log(conn, tenant_id, row.collection, [media_id], "add", now)
        return row._asdict()

    def purge(self, tenant_id: str, media_id: str) -> dict | None:
        """Delete a trashed item as a DELETE does (its objects queued for the janitor; an
        original another item shares stays); None when the tenant has no such trashed item."""
        return self.catalog.delete(media_id, tenant_id, state="trashed")

    def purge_expired(self, trash_days: float, limit: int = 500) -> int:
        """Purge what was trashed more than `trash_days` ago; how many were purged."""
        older_than = time.time() - trash_days * 86400
        with self.reader.connect() as conn:
            due = conn.execute(
                select(media.c.tenant_id, media.c.id)
                .where(and_(media.c.state == "trashed", media.c.trashed_at < older_than))
                .limit(limit)
            ).all()
        return sum(self.purge(tenant, media_id) is not None for tenant, media_id in due)

    def rejected_before(self, tenant_id: str, sha256: str) -> str | None:
        """A trashed item with these bytes (a re-ingest of what was resolved away)."""
        with self.reader.connect() as conn:
            return conn.execute(
                select(media.c.id).where(
                    media.c.tenant_id == tenant_id,
                    media.c.sha256 == sha256,
                    media.c.state == "trashed",
                )
            ).scalar()
