"""The media catalog: one item (with its faces), the list, delete, duplicate groups, and the
tenant's collections with their options."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from busque.api.auth import require
from busque.api.bodies import STRICT_JSON_BODY
from busque.api.errors import not_found
from busque.api.lists import page_of
from busque.api.schemas.common import errors
from busque.api.schemas.media import CollectionList, CollectionSet, MediaDetail, MediaList
from busque.api.strict_json import StrictJsonRoute
from busque.api.views import face_view, iso, media_view, parse_iso
from busque.auth.keys import Principal
from busque.media.catalog import COLLECTION_PATTERN
from busque.media.gallery_filters import GalleryFilter

router = APIRouter(prefix="/v1", tags=["media"], route_class=StrictJsonRoute)


@router.get(
    "/media/{media_id}",
    summary="One media item with signed image URLs",
    responses={200: {"model": MediaDetail}, **errors(404)},
)
async def get_media(
    media_id: str, request: Request, principal: Principal = Depends(require("media:read"))
):
    ctx = request.app.state.ctx
    row = await asyncio.to_thread(ctx.catalog.get, media_id, principal.tenant_id)
    if row is None:
        raise not_found("media", media_id)

    def detail() -> dict:
        faces = ctx.faces.faces_of_media(principal.tenant_id, [media_id])[media_id]
        return {
            **media_view(ctx, row),
            "faces_analyzed_at": iso(row["faces_at"]),
            "faces": [face_view(ctx, face) for face in faces],
        }

    return await asyncio.to_thread(detail)


@router.get(
    "/media",
    summary="List media, newest first",
    responses={200: {"model": MediaList}, **errors(400)},
)
async def list_media(
    request: Request,
    collection: Annotated[str | None, Query(pattern=COLLECTION_PATTERN)] = None,
    status: Literal["indexed", "pending", "all"] = "indexed",
    since: Annotated[
        str | None, Query(description="taken (EXIF) or else added on or after: ISO date/time")
    ] = None,
    until: Annotated[str | None, Query(description="taken or else added before: ISO")] = None,
    camera: Annotated[str | None, Query(max_length=200, description="EXIF camera contains")] = None,
    person_id: Annotated[
        str | None, Query(max_length=40, description="a face of it is theirs")
    ] = None,
    label: Annotated[str | None, Query(max_length=200, description="a label contains")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
    principal: Principal = Depends(require("media:read")),
):
    ctx = request.app.state.ctx
    states = () if status == "all" else (status,)
    wanted = GalleryFilter(
        since=parse_iso(since or None, "since"),
        until=parse_iso(until or None, "until"),
        camera=camera or None,
        person_id=person_id or None,
        label=label or None,
    )
    return await page_of(
        partial(ctx.catalog.list, principal.tenant_id),
        partial(media_view, ctx),
        collection=collection,
        states=states,
        limit=limit,
        cursor=cursor,
        wanted=wanted,
    )


@router.get(
    "/collections",
    summary="The tenant's collections: media counts and options",
    responses={200: {"model": CollectionList}},
)
async def collections(request: Request, principal: Principal = Depends(require("media:read"))):
    ctx = request.app.state.ctx

    def listing() -> list[dict]:
        counts = {c["collection"]: c["media"] for c in ctx.catalog.collections(principal.tenant_id)}
        options = ctx.collections.collection_options(principal.tenant_id)
        default = {"faces": ctx.settings.faces.on_ingest}
        return [
            {"collection": name, "media": counts.get(name, 0), **options.get(name, default)}
            for name in sorted(counts.keys() | options.keys())
        ]

    return {"object": "list", "data": await asyncio.to_thread(listing)}


class CollectionOptions(BaseModel):
    model_config = STRICT_JSON_BODY
    faces: bool = Field(description="analyse faces of photos ingested into this collection")


@router.put(
    "/collections/{name}",
    summary="Set a collection's options (faces on ingest)",
    responses={200: {"model": CollectionSet}},
)
async def set_collection(
    name: Annotated[str, PathParam(pattern=COLLECTION_PATTERN)],
    options: CollectionOptions,
    request: Request,
    principal: Principal = Depends(require("media:write")),
):
    ctx = request.app.state.ctx
    await asyncio.to_thread(
        ctx.collections.set_collection, principal.tenant_id, name, faces_on=options.faces
    )
    return {"collection": name, "faces": options.faces}


@router.delete(
    "/media/{media_id}",
    status_code=204,
    summary="Delete a media item everywhere",
    responses=errors(404),
)
async def delete_media(
    media_id: str, request: Request, principal: Principal = Depends(require("media:write"))
):
    ctx = request.app.state.ctx
    tenant = principal.tenant_id
    # A job still running removes what it writes after this (busque/media/ingest.py).
    row = await asyncio.to_thread(delete_row, ctx, tenant, media_id)
    if row is None:
        raise not_found("media", media_id)
    await ctx.matcher.remove.remote(tenant, row["collection"], row["index_id"])
    return Response(status_code=204)


def delete_row(ctx, tenant: str, media_id: str) -> dict | None:
    """Delete the catalog row and, as far as the object store answers now, its objects (the
    janitor deletes the rest later: busque.media.janitor)."""
    row = ctx.catalog.delete(media_id, tenant)
    if row is not None:
        ctx.janitor.sweep(row["deletions"])
    return row
