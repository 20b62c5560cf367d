"""Duplicates: finding the groups (`GET /v1/duplicates`, from the indices: busque.media.
duplicate_groups) and resolving them (busque.media.resolve): keep and trash a group with one
call (the suggestion when the caller names no item to keep), undo, "not duplicates", and the
trash (list, restore, purge)."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator

from busque.api.auth import require
from busque.api.bodies import STRICT_JSON_BODY
from busque.api.errors import ApiError, not_found
from busque.api.lists import page_of
from busque.api.schemas.common import errors
from busque.api.schemas.duplicates import DuplicatesView, PairsRecorded, Resolution, Undone
from busque.api.schemas.media import Media, MediaList
from busque.api.strict_json import StrictJsonRoute
from busque.api.views import media_view
from busque.auth.keys import Principal
from busque.media.catalog import COLLECTION_PATTERN
from busque.media.resolve import Conflict, Group, NotFound

router = APIRouter(prefix="/v1", tags=["duplicates"], route_class=StrictJsonRoute)

MAX_GROUPS = 500
MAX_GROUP = 100


class GroupChoice(BaseModel):
    model_config = STRICT_JSON_BODY
    media_ids: list[str] = Field(min_length=2, max_length=MAX_GROUP)
    keep: list[str] | None = Field(
        None, min_length=1, description="the items to keep; default: the suggested one"
    )

    @model_validator(mode="after")
    def _check(self) -> GroupChoice:
        if len(set(self.media_ids)) != len(self.media_ids):
            raise ValueError("media_ids lists an item twice")
        if self.keep is not None and not set(self.keep) <= set(self.media_ids):
            raise ValueError("keep names an item that is not in media_ids")
        return self


class ResolveRequest(BaseModel):
    model_config = STRICT_JSON_BODY
    collection: str | None = Field(None, pattern=COLLECTION_PATTERN)
    groups: list[GroupChoice] = Field(min_length=1, max_length=MAX_GROUPS)

    @model_validator(mode="after")
    def _disjoint(self) -> ResolveRequest:
        ids = [media_id for group in self.groups for media_id in group.media_ids]
        if len(set(ids)) != len(ids):
            raise ValueError("an item is in two groups")
        return self


class NotDuplicates(BaseModel):
    model_config = STRICT_JSON_BODY
    media_ids: list[str] = Field(min_length=2, max_length=MAX_GROUP)


@router.get(
    "/duplicates",
    summary="Duplicate groups: exact, pHash, visual and hybrid, with reasons",
    responses={200: {"model": DuplicatesView}},
)
async def duplicates(
    request: Request,
    collection: Annotated[str | None, Query(pattern=COLLECTION_PATTERN)] = None,
    radius: Annotated[
        int | None, Query(ge=0, le=32, description="the pHash Hamming distance of near groups")
    ] = None,
    threshold: Annotated[int | None, Query(ge=0, le=32, description="the same as radius")] = None,
    min_cosine: Annotated[
        float | None,
        Query(ge=-1, le=1, description="visual pairs: embeddings at least this alike"),
    ] = None,
    min_score: Annotated[
        float | None,
        Query(
            ge=0,
            le=1,
            description="hybrid pairs: w_visual * cosine + (1 - w_visual) * (1 - pHash bits "
            "/ 64) at least this (default: index.duplicate_score; none: no hybrid path)",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="groups per page")] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    principal: Principal = Depends(require("media:read")),
):
    ctx = request.app.state.ctx
    tenant = principal.tenant_id
    index = ctx.settings.index
    collection = collection or ctx.settings.media.default_collection
    if None not in (radius, threshold) and radius != threshold:
        raise ApiError(422, "invalid_request", "radius and threshold are one parameter: send one")
    radius = radius if radius is not None else threshold
    radius = index.duplicate_radius if radius is None else radius
    min_cosine = index.near_duplicate_cosine if min_cosine is None else min_cosine
    min_score = index.duplicate_score if min_score is None else min_score
    key = (tenant, collection, radius, min_cosine, min_score)
    reviews = ctx.duplicate_reviews
    known = reviews.known(key)
    found = await ctx.matcher.duplicate_pairs.remote(
        tenant,
        collection,
        radius,
        min_cosine,
        known_version=known.pairs_version if known else None,
        wait_s=index.duplicates_wait_s,
        min_score=min_score,
    )
    review = await asyncio.to_thread(reviews.review, key, known, found)
    following = offset + limit
    page = review.groups[offset:following]
    shown = {media_id for group in page for media_id in group["media_ids"]}
    items = await asyncio.to_thread(
        lambda: {i: media_view(ctx, review.row(i)) for i in sorted(shown)}
    )
    # Plain JSON types already: encoded as they are (FastAPI's jsonable_encoder walks every
    # value in Python: ~90 ms for the 10,000 near groups of a 100,000-item collection).
    return JSONResponse(
        {
            "collection": collection,
            "radius": radius,
            "min_cosine": min_cosine,
            "min_score": min_score,
            # False: the near-duplicate search is still running (a large collection's first one
            # takes minutes); the groups are those found so far. Ask again later.
            "complete": found["complete"],
            "exact": review.exact,
            "near": review.near,
            # The item POST /v1/duplicates/resolve keeps of each near group unless told otherwise.
            "near_suggested": review.near_suggested,
            # Identical bytes with every path a backfill found them at (one media row may stand
            # for several files), largest savings first.
            "exact_files": review.exact_files,
            # Every group the pairs connect (exact, pHash, visual, hybrid), with why each matched,
            # largest savings first, a page at a time.
            "groups": page,
            # The page's items (thumbnails, sizes, metadata), so a reviewer needs no other call.
            "items": items,
            "total_groups": len(review.groups),
            "next_offset": following if following < len(review.groups) else None,
        }
    )


def _missing(exc: NotFound) -> ApiError:
    ids = list(exc.args[0])
    return ApiError(
        404,
        "media_not_found",
        f"no indexed media of this collection: {', '.join(ids)}",
        {"media_ids": ids},
    )


@router.post(
    "/duplicates/resolve",
    summary="Keep one (or several) of each group, trash the rest",
    responses={200: {"model": Resolution}, **errors(404)},
)
async def resolve(
    body: ResolveRequest, request: Request, principal: Principal = Depends(require("media:write"))
):
    ctx = request.app.state.ctx
    collection = body.collection or ctx.settings.media.default_collection
    groups = [Group(tuple(g.media_ids), tuple(g.keep) if g.keep else None) for g in body.groups]
    try:
        done = await asyncio.to_thread(
            ctx.resolutions.resolve, principal.tenant_id, collection, groups
        )
    except NotFound as exc:
        raise _missing(exc) from None
    return {
        "resolution_id": done["resolution_id"],
        "collection": collection,
        "groups": [
            {key: group[key] for key in ("kept", "trashed", "suggested")}
            for group in done["groups"]
        ],
    }


@router.post(
    "/duplicates/resolutions/{resolution_id}/undo",
    summary="Undo a resolution: exactly the state before it",
    responses={200: {"model": Undone}, **errors(404, 409)},
)
async def undo(
    resolution_id: str, request: Request, principal: Principal = Depends(require("media:write"))
):
    ctx = request.app.state.ctx
    try:
        return await asyncio.to_thread(ctx.resolutions.undo, principal.tenant_id, resolution_id)
    except NotFound:
        raise not_found("resolution", resolution_id) from None
    except Conflict as exc:
        raise ApiError(409, "cannot_undo", str(exc)) from None


@router.post(
    "/duplicates/not-duplicates",
    summary="These items are not duplicates of each other: never propose them again",
    responses={200: {"model": PairsRecorded}, **errors(404)},
)
async def not_duplicates(
    body: NotDuplicates, request: Request, principal: Principal = Depends(require("media:write"))
):
    ctx = request.app.state.ctx
    try:
        new = await asyncio.to_thread(
            ctx.resolutions.not_duplicates, principal.tenant_id, body.media_ids
        )
    except NotFound as exc:
        raise _missing(exc) from None
    return {"pairs_recorded": new}


@router.get(
    "/trash",
    summary="Trashed media (resolved duplicates), newest first",
    responses={200: {"model": MediaList}, **errors(400)},
)
async def trash(
    request: Request,
    collection: Annotated[str | None, Query(pattern=COLLECTION_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
    principal: Principal = Depends(require("media:read")),
):
    ctx = request.app.state.ctx
    return await page_of(
        partial(ctx.resolutions.trashed, principal.tenant_id),
        partial(media_view, ctx),
        collection=collection,
        limit=limit,
        cursor=cursor,
    )


@router.post(
    "/trash/{media_id}/restore",
    summary="Put a trashed item back",
    responses={200: {"model": Media}, **errors(404)},
)
async def restore(
    media_id: str, request: Request, principal: Principal = Depends(require("media:write"))
):
    ctx = request.app.state.ctx
    row = await asyncio.to_thread(ctx.resolutions.restore, principal.tenant_id, media_id)
    if row is None:
        raise not_found("trashed_media", media_id)
    return media_view(ctx, row)


@router.delete(
    "/trash/{media_id}",
    status_code=204,
    summary="Purge a trashed item now",
    responses=errors(404),
)
async def purge(
    media_id: str, request: Request, principal: Principal = Depends(require("media:write"))
):
    ctx = request.app.state.ctx
    row = await asyncio.to_thread(ctx.resolutions.purge, principal.tenant_id, media_id)
    if row is None:
        raise not_found("trashed_media", media_id)
    await asyncio.to_thread(ctx.janitor.sweep, row["deletions"])
    return Response(status_code=204)
