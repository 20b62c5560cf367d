"""Faces and people: face search, a face's person, people (list, rename, merge, their media).

Face analysis of stored media runs as a job: `POST /v1/jobs {"model": "faces", "input":
{"media_ids": [...]}}` (or `{"collection": ...}`); ingest analyses faces itself unless the
collection opts out (`PUT /v1/collections/{name} {"faces": false}`).
"""

from __future__ import annotations

import asyncio
import time
import unicodedata
from functools import partial
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, ValidationError, field_validator

from busque.api.auth import require
from busque.api.bodies import (
    STRICT_JSON_BODY,
    base64_image,
    json_object,
    multipart_image,
    stored_image,
)
from busque.api.errors import ApiError, invalid, media_error, not_found
from busque.api.lists import page_of
from busque.api.schemas.common import errors, hand_read_body
from busque.api.schemas.media import Face, MediaList
from busque.api.schemas.search import FaceList, FaceSearchResult, Person, PersonList
from busque.api.strict_json import StrictJsonRoute
from busque.api.views import face_view, iso, media_view
from busque.auth.keys import Principal
from busque.faces.store import Conflict
from busque.media.catalog import COLLECTION_PATTERN
from busque.media.decode import MediaError, image_info

router = APIRouter(prefix="/v1", tags=["faces"], route_class=StrictJsonRoute)


def person_view(ctx, row: dict) -> dict:
    key = row.get("cover_thumbnail_key")
    return {
        "id": row["id"],
        "object": "person",
        "name": row["name"],
        "face_count": row["face_count"],
        "cover_face_id": row["cover_face_id"],
        "cover_thumbnail_url": ctx.objects.presign_get(key, ctx.settings.storage.url_ttl_s)
        if key
        else None,
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


# ---- face search ----


class FaceSearch(BaseModel):  # lax: multipart fields are text
    image_base64: str | None = Field(None, description="or send multipart `image`")
    object_key: str | None = Field(None, description="an uploaded object instead of an image")
    k: int = Field(10, ge=1, le=100, description="nearest faces per face found")
    threshold: float | None = Field(
        None, gt=0, le=2, allow_inf_nan=False, description="default faces.match_threshold"
    )


async def _query_image(request: Request, ctx, tenant: str) -> tuple[bytes, FaceSearch]:
    limit = ctx.settings.media.max_upload_bytes
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        data, raw = await multipart_image(request, limit)
        return data, _validated({k: v for k, v in raw.items() if k in ("k", "threshold")})
    query = _validated(await json_object(request))
    if query.image_base64:
        data = base64_image(query.image_base64)
    elif query.object_key:
        data = await stored_image(ctx.objects, query.object_key, tenant, limit)
    else:
        raise ApiError(422, "invalid_request", "send an image (multipart, image_base64 or key)")
    if len(data) > limit:
        raise ApiError(413, "payload_too_large", f"images are limited to {limit} bytes")
    return data, query


def _validated(raw: dict) -> FaceSearch:
    try:
        return FaceSearch.model_validate(raw)
    except ValidationError as exc:
        raise invalid(exc, "invalid_request", "invalid face search") from None


def _analyzer(ctx):
    if ctx.face_analyzer is None:
        raise ApiError(503, "faces_unavailable", "face analysis is not deployed here")
    return ctx.face_analyzer


@router.post(
    "/faces/search",
    summary="Faces in a photo -> the nearest known faces and people",
    openapi_extra=hand_read_body(FaceSearch),
    responses={200: {"model": FaceSearchResult}, **errors(404)},
)
async def search_faces(request: Request, principal: Principal = Depends(require("media:read"))):
    ctx = request.app.state.ctx
    started = time.perf_counter()
    analyzer = _analyzer(ctx)
    data, query = await _query_image(request, ctx, principal.tenant_id)
    try:  # refuse junk and bombs here, before a replica (perhaps scaled to zero) is woken
        await asyncio.to_thread(image_info, data, max_pixels=ctx.settings.media.max_pixels)
        found = await analyzer.analyze.remote(data)
    except MediaError as exc:
        raise media_error(exc) from None
    threshold = query.threshold or ctx.settings.faces.match_threshold
    tenant = principal.tenant_id

    def lookup() -> list[dict]:
        if not found:
            return []
        ctx.face_index.sync(tenant)
        hits = ctx.face_index.search(tenant, np.stack([f["embedding"] for f in found]), query.k)
        near = [[(s, d) for s, d in row if d <= threshold] for row in hits]
        rows = ctx.faces.faces_by_seq(tenant, {s for row in near for s, _ in row})
        ctx.face_index.forget(tenant, [s for row in near for s, _ in row if s not in rows])
        names = ctx.faces.people_names(tenant, {r["person_id"] for r in rows.values()} - {None})
        results = []
        for face, row in zip(found, near, strict=True):
            matches = [
                {**face_view(ctx, rows[s]), "distance": round(d, 4)} for s, d in row if s in rows
            ]
            people: dict[str, float] = {}
            for match in matches:
                if match["person_id"] and match["person_id"] not in people:
                    people[match["person_id"]] = match["distance"]
            results.append(
                {
                    "box": face["box"],
                    "score": face["score"],
                    "matches": matches,
                    "people": [
                        {"person_id": p, "name": names.get(p), "distance": d}
                        for p, d in people.items()
                    ],
                }
            )
        return results

    faces = await asyncio.to_thread(lookup)
    return {
        "faces": faces,
        "threshold": threshold,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
    }


# ---- faces ----


@router.get(
    "/faces",
    summary="Faces, newest first: those in no person yet, a person's, a photo's",
    responses={200: {"model": FaceList}, **errors(400)},
)
async def list_faces(
    request: Request,
    unassigned: Annotated[bool, Query(description="only faces in no person yet")] = False,
    person_id: str | None = None,
    media_id: str | None = None,
    collection: Annotated[str | None, Query(pattern=COLLECTION_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
    principal: Principal = Depends(require("media:read")),
):
    ctx = request.app.state.ctx
    if unassigned and person_id is not None:
        raise ApiError(422, "invalid_request", "unassigned faces have no person_id: send one")
    return await page_of(
        partial(ctx.faces.list_faces, principal.tenant_id),
        partial(face_view, ctx),
        unassigned=unassigned,
        person_id=person_id,
        media_id=media_id,
        collection=collection,
        limit=limit,
        cursor=cursor,
    )


@router.get(
    "/faces/{face_id}",
    summary="One face: its box, score, thumbnail and person",
    responses={200: {"model": Face}, **errors(404)},
)
async def get_face(face_id: str, request: Request, principal=Depends(require("media:read"))):
    ctx = request.app.state.ctx
    face = await asyncio.to_thread(ctx.faces.get_face, principal.tenant_id, face_id)
    if face is None:
        raise not_found("face", face_id)
    return face_view(ctx, face)


class FaceChange(BaseModel):
    model_config = STRICT_JSON_BODY
    person_id: str | None = Field(
        description='move the face to this person; null: to nobody; "new": a person of its own'
    )


@router.patch(
    "/faces/{face_id}",
    summary="Move a face to another person",
    responses={200: {"model": Face}, **errors(404, 409)},
)
async def move_face(
    face_id: str,
    change: FaceChange,
    request: Request,
    principal: Principal = Depends(require("media:write")),
):
    ctx = request.app.state.ctx
    try:
        face = await asyncio.to_thread(
            ctx.faces.move_face, principal.tenant_id, face_id, change.person_id
        )
    except Conflict as exc:
        raise ApiError(409, "same_photo", str(exc)) from None
    if face is None:
        missing = await asyncio.to_thread(ctx.faces.get_face, principal.tenant_id, face_id)
        raise (
            not_found("face", face_id) if missing is None else not_found("person", change.person_id)
        )
    return face_view(ctx, face)


# ---- people ----


@router.get(
    "/people",
    summary="People (clustered faces), newest first",
    responses={200: {"model": PersonList}, **errors(400)},
)
async def list_people(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
    principal: Principal = Depends(require("media:read")),
):
    ctx = request.app.state.ctx
    return await page_of(
        partial(ctx.faces.list_people, principal.tenant_id),
        partial(person_view, ctx),
        limit=limit,
        cursor=cursor,
    )


async def _person(ctx, tenant: str, person_id: str) -> dict:
    row = await asyncio.to_thread(ctx.faces.get_person, tenant, person_id)
    if row is None:
        raise not_found("person", person_id)
    return row


@router.get(
    "/people/{person_id}", summary="One person", responses={200: {"model": Person}, **errors(404)}
)
async def get_person(person_id: str, request: Request, principal=Depends(require("media:read"))):
    ctx = request.app.state.ctx
    return person_view(ctx, await _person(ctx, principal.tenant_id, person_id))


# Characters that hide or reorder what a name shows: bidi embeddings, overrides and isolates,
# the zero-width space and the byte-order mark (ZWJ and ZWNJ stay: scripts and emoji need them).
_DECEPTIVE = {*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200B, 0xFEFF}


class PersonChange(BaseModel):
    model_config = STRICT_JSON_BODY
    name: str | None = Field(max_length=200, description="null clears the name")

    @field_validator("name")
    @classmethod
    def _printable(cls, name: str | None) -> str | None:
        if name is not None and any(
            unicodedata.category(c) == "Cc" or ord(c) in _DECEPTIVE for c in name
        ):
            raise ValueError(
                "a name may not contain control, bidi-override or invisible characters"
            )
        return name


@router.patch(
    "/people/{person_id}",
    summary="Rename a person",
    responses={200: {"model": Person}, **errors(404)},
)
async def rename_person(
    person_id: str,
    change: PersonChange,
    request: Request,
    principal: Principal = Depends(require("media:write")),
):
    ctx = request.app.state.ctx
    name = change.name.strip() if change.name else None
    row = await asyncio.to_thread(ctx.faces.rename, principal.tenant_id, person_id, name or None)
    if row is None:
        raise not_found("person", person_id)
    return person_view(ctx, row)


class Merge(BaseModel):
    model_config = STRICT_JSON_BODY
    person_id: str = Field(description="the person merged into this one (and deleted)")


@router.post(
    "/people/{person_id}/merge",
    summary="Merge another person into this one",
    responses={200: {"model": Person}, **errors(404, 409)},
)
async def merge_people(
    person_id: str,
    merge: Merge,
    request: Request,
    principal: Principal = Depends(require("media:write")),
):
    ctx = request.app.state.ctx
    if merge.person_id == person_id:
        raise ApiError(422, "invalid_request", "a person cannot be merged into itself")
    try:
        row = await asyncio.to_thread(
            ctx.faces.merge, principal.tenant_id, person_id, merge.person_id
        )
    except Conflict as exc:
        raise ApiError(409, "same_photo", str(exc)) from None
    if row is None:
        await _person(ctx, principal.tenant_id, person_id)
        raise not_found("person", merge.person_id)
    return person_view(ctx, row)


@router.get(
    "/people/{person_id}/media",
    summary="The media a person appears in",
    responses={200: {"model": MediaList}, **errors(400, 404)},
)
async def person_media(
    person_id: str,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
    principal: Principal = Depends(require("media:read")),
):
    ctx = request.app.state.ctx
    tenant = principal.tenant_id
    await _person(ctx, tenant, person_id)
    try:
        ids, next_cursor = await asyncio.to_thread(
            ctx.faces.person_media, tenant, person_id, limit=limit, cursor=cursor
        )
    except ValueError as exc:
        raise ApiError(400, "invalid_cursor", str(exc)) from None

    def views() -> list[dict]:
        rows = [ctx.catalog.get(media_id, tenant) for media_id in ids]
        return [media_view(ctx, row) for row in rows if row is not None]

    data = await asyncio.to_thread(views)
    return {"object": "list", "data": data, "next_cursor": next_cursor}
