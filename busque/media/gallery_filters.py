"""The gallery's filters (by date, camera, person, label) as SQL conditions on the media table,
the same on SQLite and PostgreSQL.

- date: an item's date is its EXIF capture time (`metadata.captured_at`, written by backfill)
  when it has one, else the time it was added; `since` is inclusive, `until` exclusive.
- camera: `metadata.camera` contains the text (case-insensitive).
- person: a face of the item belongs to that person.
- label: one of the item's labels (the classifier's top-k names) contains the text
  (case-insensitive): "cat" finds "tabby, tabby cat".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import String, and_, cast, exists, func, literal, or_, select
from sqlalchemy.sql.elements import ColumnElement

from busque.db.schema import faces, media


@dataclass(frozen=True)
class GalleryFilter:
    since: datetime | None = None  # naive = UTC
    until: datetime | None = None
    camera: str | None = None
    person_id: str | None = None
    label: str | None = None


def conditions(wanted: GalleryFilter, dialect: str) -> list[ColumnElement]:
    out = []
    captured = media.c.metadata["captured_at"].as_string()
    if wanted.since is not None:
        out.append(_on_or_after(captured, wanted.since))
    if wanted.until is not None:
        out.append(~_on_or_after(captured, wanted.until))
    if wanted.camera:
        camera = func.lower(media.c.metadata["camera"].as_string())
        out.append(camera.contains(wanted.camera.lower(), autoescape=True))
    if wanted.person_id:
        out.append(
            exists().where(faces.c.media_id == media.c.id, faces.c.person_id == wanted.person_id)
        )
    if wanted.label:
        out.append(_has_label(wanted.label, dialect))
    return out


def _on_or_after(captured: ColumnElement, moment: datetime) -> ColumnElement:
    moment = moment.replace(tzinfo=None) if moment.tzinfo is None else moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    epoch = moment.replace(tzinfo=UTC).timestamp()
    return or_(
        and_(captured.is_not(None), captured >= text),
        and_(captured.is_(None), media.c.created_at >= epoch),
    )


def _has_label(text: str, dialect: str) -> ColumnElement:
    if dialect == "postgresql":
        element = func.json_array_elements(media.c.labels).table_valued("value").alias("label")
        name = element.c.value.op("->>")(literal("label"))
    else:
        element = func.json_each(media.c.labels).table_valued("value").alias("label")
        name = func.json_extract(element.c.value, "$.label")
    return exists(
        select(literal(1))
        .select_from(element)
        .where(func.lower(cast(name, String)).contains(text.lower(), autoescape=True))
    )
