"""Look-alike and face searches as the API answers them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from busque.api.schemas.common import Page, Timestamp
from busque.api.schemas.media import Face


class Match(BaseModel):
    rank: int
    media_id: str
    score: float = Field(description="higher is more alike")
    distance: float | None
    phash_distance: int | None = Field(description="Hamming distance of the pHashes, 0 to 64")
    exact_duplicate: bool
    near_duplicate: bool
    labels: list[Any] | dict[str, Any] | None
    metadata: dict[str, Any]
    image_url: str | None
    thumbnail_url: str | None


class SearchResult(BaseModel):
    matches: list[Match]
    duration_ms: float


class FaceMatch(Face):
    distance: float


class PersonHit(BaseModel):
    person_id: str
    name: str | None
    distance: float


class FoundFace(BaseModel):
    box: list[float] | dict[str, Any]
    score: float
    matches: list[FaceMatch]
    people: list[PersonHit] = Field(description="the people of the matches, nearest first")


class FaceSearchResult(BaseModel):
    faces: list[FoundFace]
    threshold: float
    duration_ms: float


class FaceList(Page):
    data: list[Face]
    next_cursor: str | None


class Person(BaseModel):
    id: str
    object: str
    name: str | None
    face_count: int
    cover_face_id: str | None
    cover_thumbnail_url: str | None
    created_at: Timestamp
    updated_at: Timestamp


class PersonList(Page):
    data: list[Person]
    next_cursor: str | None
