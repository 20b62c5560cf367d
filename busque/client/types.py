"""Typed results. Each is a dataclass of the fields busque documents; the whole answer stays in
`raw`, so a field the server adds later is still there: `obj.raw["new_field"]`, `obj["new_field"]`
or `obj.new_field`."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

T = TypeVar("T", bound="Resource")

TERMINAL = ("succeeded", "failed", "canceled")


@dataclass(kw_only=True)
class Resource:
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    # field name -> the Resource class of its value (a dict, or a list of dicts)
    _nested: ClassVar[dict[str, type[Resource]]] = {}

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        values = {}
        for f in dataclasses.fields(cls):
            if f.name == "raw" or f.name not in data:
                continue
            value = data[f.name]
            nested = cls._nested.get(f.name)
            if nested is not None and isinstance(value, list):
                value = [nested.from_dict(v) if isinstance(v, dict) else v for v in value]
            elif nested is not None and isinstance(value, dict):
                value = nested.from_dict(value)
            values[f.name] = value
        return cls(**values, raw=data)

    def __getattr__(self, name: str) -> Any:
        # Only called for names that are not fields: the server's newer fields.
        raw = self.__dict__.get("raw") or {}
        if name in raw:
            return raw[name]
        raise AttributeError(f"{type(self).__name__} has no field {name!r}")

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)


@dataclass(kw_only=True)
class Job(Resource):
    id: str
    status: str
    model: str = ""
    progress: float | None = None
    input: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    attempts: int = 0
    max_attempts: int | None = None
    cancel_requested: bool = False
    result: Any = None
    error: dict[str, Any] | None = None
    webhook: dict[str, Any] | None = None
    labels: dict[str, str] = field(default_factory=dict)
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: str | None = None
    # True when POST /v1/jobs replayed an earlier request's job (the same Idempotency-Key).
    replayed: bool = False

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


@dataclass(kw_only=True)
class Account(Resource):
    """GET /v1/me: the calling key's tenant and scopes; `webhook_secret` (the tenant's default
    webhook signing secret, for verify_webhook) only for keys that may create jobs."""

    tenant_id: str
    tenant: str | None = None
    key_id: str | None = None
    scopes: list[str] = field(default_factory=list)
    webhook_secret: str | None = None


@dataclass(kw_only=True)
class Event(Resource):
    """A job event: job.status, job.progress, job.output (streamed output), job.result."""

    id: int
    type: str
    job_id: str
    attempt: int | None = None
    created_at: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.type == "job.status" and self.data.get("status") in TERMINAL


@dataclass(kw_only=True)
class Artifact(Resource):
    name: str
    object_key: str = ""
    content_type: str | None = None
    size: int | None = None
    created_at: str | None = None
    url: str = ""
    expires_at: str | None = None


@dataclass(kw_only=True)
class Upload(Resource):
    """A presigned upload ticket (and, once `upload` PUT the bytes, their key)."""

    object_key: str
    upload_url: str = ""
    method: str = "PUT"
    headers: dict[str, str] = field(default_factory=dict)
    max_bytes: int | None = None
    expires_at: str | None = None


@dataclass(kw_only=True)
class Face(Resource):
    id: str
    media_id: str | None = None
    box: Any = None
    score: float | None = None
    person_id: str | None = None
    thumbnail_url: str | None = None
    distance: float | None = None  # in face search matches


@dataclass(kw_only=True)
class Media(Resource):
    id: str
    collection: str | None = None
    status: str | None = None
    sha256: str | None = None
    phash: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    labels: Any = None
    embedding_model: str | None = None
    created_at: str | None = None
    indexed_at: str | None = None
    trashed_at: str | None = None
    resolution_id: str | None = None
    image_url: str | None = None
    thumbnail_url: str | None = None
    faces: list[Face] = field(default_factory=list)  # GET /v1/media/{id} only
    _nested: ClassVar[dict[str, type[Resource]]] = {"faces": Face}


@dataclass(kw_only=True)
class Ingested(Resource):
    """POST /v1/ingest's answer: the photo's facts at once; its job does the rest."""

    job_id: str
    media_id: str
    status: str = "queued"
    collection: str | None = None
    phash: str | None = None
    sha256: str | None = None
    duplicate_of: str | None = None
    previously_rejected: Any = None
    job: Job | None = None
    _nested: ClassVar[dict[str, type[Resource]]] = {"job": Job}


@dataclass(kw_only=True)
class Match(Resource):
    rank: int
    media_id: str
    score: float
    distance: float | None = None
    phash_distance: int | None = None
    exact_duplicate: bool = False
    near_duplicate: bool = False
    labels: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    image_url: str | None = None
    thumbnail_url: str | None = None


@dataclass(kw_only=True)
class SearchResult(Resource):
    matches: list[Match] = field(default_factory=list)
    duration_ms: float | None = None
    _nested: ClassVar[dict[str, type[Resource]]] = {"matches": Match}

    def __iter__(self) -> Iterator[Match]:
        return iter(self.matches)

    def __len__(self) -> int:
        return len(self.matches)


@dataclass(kw_only=True)
class PersonMatch(Resource):
    person_id: str
    name: str | None = None
    distance: float | None = None


@dataclass(kw_only=True)
class FoundFace(Resource):
    """A face found in a face-search query photo, with the nearest known faces and people."""

    box: Any = None
    score: float | None = None
    matches: list[Face] = field(default_factory=list)
    people: list[PersonMatch] = field(default_factory=list)
    _nested: ClassVar[dict[str, type[Resource]]] = {"matches": Face, "people": PersonMatch}


@dataclass(kw_only=True)
class FaceSearchResult(Resource):
    faces: list[FoundFace] = field(default_factory=list)
    threshold: float | None = None
    duration_ms: float | None = None
    _nested: ClassVar[dict[str, type[Resource]]] = {"faces": FoundFace}


@dataclass(kw_only=True)
class Person(Resource):
    id: str
    name: str | None = None
    face_count: int = 0
    cover_face_id: str | None = None
    cover_thumbnail_url: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


@dataclass(kw_only=True)
class Collection(Resource):
    collection: str
    media: int = 0
    faces: bool | None = None


@dataclass(kw_only=True)
class ModelInfo(Resource):
    id: str
    kind: str | None = None
    backend: str | None = None
    available: bool | None = None


@dataclass(kw_only=True)
class DuplicatePair(Resource):
    a: str
    b: str
    why: list[str] = field(default_factory=list)
    phash_distance: int | None = None
    transform: Any = None
    cosine: float | None = None
    score: float | None = None


@dataclass(kw_only=True)
class DuplicateGroup(Resource):
    """Media that are copies of each other; `suggested` is the one a resolve keeps by default."""

    media_ids: list[str]
    suggested: str | None = None
    savings_bytes: int = 0
    pairs: list[DuplicatePair] = field(default_factory=list)
    _nested: ClassVar[dict[str, type[Resource]]] = {"pairs": DuplicatePair}


@dataclass(kw_only=True)
class Duplicates(Resource):
    """GET /v1/duplicates: a page of groups, with the items they show (`items[media_id]`)."""

    collection: str | None = None
    complete: bool = True
    groups: list[DuplicateGroup] = field(default_factory=list)
    items: dict[str, Media] = field(default_factory=dict)
    total_groups: int = 0
    next_offset: int | None = None
    _nested: ClassVar[dict[str, type[Resource]]] = {"groups": DuplicateGroup}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Duplicates:
        found = super().from_dict({k: v for k, v in data.items() if k != "items"})
        found.items = {k: Media.from_dict(v) for k, v in (data.get("items") or {}).items()}
        found.raw = data
        return found


@dataclass(kw_only=True)
class ResolvedGroup(Resource):
    kept: list[str] = field(default_factory=list)
    trashed: list[str] = field(default_factory=list)
    suggested: str | None = None


@dataclass(kw_only=True)
class Resolution(Resource):
    resolution_id: str
    collection: str | None = None
    groups: list[ResolvedGroup] = field(default_factory=list)
    _nested: ClassVar[dict[str, type[Resource]]] = {"groups": ResolvedGroup}


@dataclass(kw_only=True)
class Page(Generic[T]):
    """One page of a list; `next_cursor` asks for the next (the client's iter_* follow it)."""

    data: list[T]
    next_cursor: str | None = None

    def __iter__(self) -> Iterator[T]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)
