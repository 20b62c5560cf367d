"""Media items, ingest answers and collections as the API shows them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from busque.api.schemas.common import Page, Timestamp
from busque.api.schemas.jobs import Job

MediaStatus = Literal["pending", "indexed", "failed", "trashed"]


class Media(BaseModel):
    """A catalog item; once indexed (or trashed) with presigned image and thumbnail URLs."""

    id: str
    object: Literal["media"]
    collection: str
    status: str
    sha256: str
    phash: str | None = Field(description="64-bit pHash, 16 hex digits")
    width: int | None
    height: int | None
    format: str | None
    bytes: int | None
    metadata: dict[str, Any]
    labels: list[Any] | dict[str, Any] | None
    embedding_model: str | None
    created_at: Timestamp
    indexed_at: Timestamp | None
    trashed_at: Timestamp | None
    resolution_id: str | None
    image_url: str | None = None
    thumbnail_url: str | None = None


class Face(BaseModel):
    id: str
    object: Literal["face"]
    media_id: str
    box: list[float] | dict[str, Any]
    score: float
    person_id: str | None
    thumbnail_url: str | None


class MediaDetail(Media):
    faces_analyzed_at: Timestamp | None
    faces: list[Face]


class MediaList(Page):
    data: list[Media]
    next_cursor: str | None


class Accepted(BaseModel):
    """A photo accepted: its pHash and sha256 at once, its ingest job queued (`Location`)."""

    job_id: str
    media_id: str
    status: str = Field(description="the ingest job's status")
    collection: str
    phash: str
    sha256: str
    duplicate_of: str | None = Field(description="an earlier item with the same bytes")
    previously_rejected: str | None = Field(
        description="the trashed item, when these bytes were resolved away as a duplicate before"
    )
    job: Job


class Collection(BaseModel):
    collection: str
    media: int
    faces: bool


class CollectionList(Page):
    data: list[Collection]


class CollectionSet(BaseModel):
    collection: str
    faces: bool


class SyncedFace(BaseModel):
    id: str
    box: list[float] | dict[str, Any]
    person_id: str | None


class Synced(Accepted):
    """A new synced item: accepted as an ingest is, with its faces stored."""

    created: Literal[True]
    faces: list[SyncedFace]


class AlreadySynced(BaseModel):
    """The tenant had these bytes already: the item it has."""

    media_id: str
    created: Literal[False]
    collection: str
