"""Duplicate groups, resolutions and the trash as the API shows them."""

from __future__ import annotations

from pydantic import BaseModel, Field

from busque.api.schemas.media import Media

Why = str  # exact, phash, turned, mirrored, visual, hybrid (busque.media.duplicate_groups)


class Pair(BaseModel):
    a: str
    b: str
    why: list[Why]
    phash_distance: int | None
    transform: str | None
    cosine: float | None
    score: float | None


class Group(BaseModel):
    media_ids: list[str] = Field(description="the suggested item to keep first")
    suggested: str
    savings_bytes: int
    pairs: list[Pair]


class ExactFile(BaseModel):
    media_id: str
    library: str
    path: str


class ExactFiles(BaseModel):
    sha256: str
    bytes: int
    media_ids: list[str]
    files: list[ExactFile]
    copies: int
    savings_bytes: int


class DuplicatesView(BaseModel):
    collection: str
    radius: int
    min_cosine: float
    min_score: float | None
    complete: bool = Field(
        description="false while the first search of a large collection still runs: the "
        "groups found so far; ask again later"
    )
    exact: list[list[str]]
    near: list[list[str]]
    near_suggested: list[str] = Field(description="the item resolve keeps of each near group")
    exact_files: list[ExactFiles]
    groups: list[Group] = Field(description="a page of groups, largest savings first")
    items: dict[str, Media] = Field(description="the page's items by id")
    total_groups: int
    next_offset: int | None


class ResolvedGroup(BaseModel):
    kept: list[str]
    trashed: list[str]
    suggested: str


class Resolution(BaseModel):
    resolution_id: str
    collection: str
    groups: list[ResolvedGroup]


class Undone(BaseModel):
    resolution_id: str
    restored: list[str]


class PairsRecorded(BaseModel):
    pairs_recorded: int
