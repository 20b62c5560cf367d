"""Look-alikes: `POST /v1/search` (by image, text, pHash or media id), answered by the Matcher
and joined with the catalog (BusquePet's `POST /v1/match` is its door: busque/doors/busquepet.py)."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from busque.api.auth import require
from busque.api.bodies import (
    base64_image,
    json_field,
    json_object,
    multipart_image,
)
from busque.api.errors import ApiError, invalid, not_found
from busque.api.schemas.common import errors, hand_read_body
from busque.api.schemas.search import SearchResult
from busque.api.strict_json import StrictJsonRoute
from busque.api.timing import ServerTiming
from busque.api.views import media_view
from busque.auth.keys import Principal
from busque.media.catalog import COLLECTION_PATTERN
from busque.media.matches import joined, match_view
from busque.media.phash import hex_to_int64

router = APIRouter(prefix="/v1", tags=["media"], route_class=StrictJsonRoute)

MAX_K = 100  # the most look-alikes one search (or ingest) answers with


class SearchQuery(BaseModel):
    text: str | None = Field(None, min_length=1, max_length=1000)
    phash: str | None = Field(None, pattern=r"^[0-9a-fA-F]{16}$")
    media_id: str | None = None
    image_base64: str | None = Field(None, description="or send multipart `image`")
    k: int = Field(10, ge=1, le=MAX_K)
    collection: str | None = Field(None, pattern=COLLECTION_PATTERN)
    mode: Literal["hybrid", "visual", "phash"] = "hybrid"
    filters: dict[str, Any] = Field(default_factory=dict, description="metadata key == value")
    min_score: float | None = Field(None, ge=-1, le=1, allow_inf_nan=False)


async def _embed_image(ctx, data: bytes, timing: ServerTiming) -> tuple[Any, int]:
    """A query image's vector and pHash (nothing is stored): the bytes go to the Embedder as
    they are; it decodes them at the size the model needs and computes the pHash too. Its own
    timings join the response's Server-Timing (`embed-prepare`, `embed-model` with the batch)."""
    embedded = await ctx.embedder.embed.remote(data, True)
    if "error" in embedded:
        error = embedded["error"]
        raise ApiError(error["status"], error["code"], error["message"])
    spent = embedded["timing"]
    timing.add("embed-prepare", spent["prepare_ms"])
    timing.add("embed-model", spent["model_ms"], f"batch of {spent['batch']}")
    return embedded["vector"], hex_to_int64(embedded["phash"])


async def _query(
    ctx, principal: Principal, q: SearchQuery, image: bytes | None, timing: ServerTiming
) -> dict:
    """Vector and/or pHash for the query, and ids to leave out."""
    vector, phash, exclude, sha256 = None, None, [], None
    if sum(x is not None for x in (q.text, q.phash, q.media_id, image)) != 1:
        raise ApiError(
            422, "invalid_request", "search by exactly one of image, text, phash, media_id"
        )
    if image is not None:
        vector, phash = await _embed_image(ctx, image, timing)
        sha256 = hashlib.sha256(image).hexdigest()
    elif q.text is not None:
        info = await ctx.embedder.info.remote()
        if not info["has_text"]:
            raise ApiError(
                422,
                "no_text_tower",
                f"the embedding model {info['model']!r} has no text tower; "
                "text search needs a model such as clip",
            )
        vector = await ctx.embedder.embed_text.remote(q.text)
    elif q.phash is not None:
        phash = hex_to_int64(q.phash)
    else:
        row = await asyncio.to_thread(ctx.catalog.get, q.media_id, principal.tenant_id)
        if row is None or row["state"] != "indexed":
            raise not_found("media", q.media_id)
        from busque.media.catalog import bytes_to_vector

        vector, phash, exclude = bytes_to_vector(row["embedding"]), row["phash"], [row["index_id"]]
        q.collection = q.collection or row["collection"]
    if q.mode == "visual" and vector is None:
        raise ApiError(422, "invalid_request", "visual search needs an image, text or media_id")
    if q.mode == "phash" and phash is None:
        raise ApiError(422, "invalid_request", "phash search needs an image, phash or media_id")
    return {"vector": vector, "phash": phash, "exclude_ids": exclude, "sha256": sha256}


async def search_matches(
    ctx, principal: Principal, q: SearchQuery, image: bytes | None, timing: ServerTiming
) -> list[dict]:
    query = await _query(ctx, principal, q, image, timing)
    timing.mark("query")
    collection = q.collection or ctx.settings.media.default_collection
    fetch = q.k * 5 if q.filters else q.k  # filters apply after ranking: fetch more
    found = await ctx.matcher.search.remote(
        principal.tenant_id, collection, k=fetch, mode=q.mode, min_score=q.min_score, **query
    )
    timing.mark("match")
    matches = await asyncio.to_thread(_match_views, ctx, principal.tenant_id, found, q)
    timing.mark("catalog")
    return matches


def _match_views(ctx, tenant: str, found: list[dict], q: SearchQuery) -> list[dict]:
    """The Matcher's hits joined with the catalog (in one thread hop): filters, labels, URLs."""
    matches = []
    for match, row in joined(ctx.catalog, tenant, found, q.filters):
        view = media_view(ctx, row)
        matches.append(
            match_view(len(matches) + 1, match, row)
            | {"image_url": view.get("image_url"), "thumbnail_url": view.get("thumbnail_url")}
        )
        if len(matches) == q.k:
            break
    return matches


@router.post(
    "/search",
    summary="Find look-alikes by image, text, pHash or media id",
    openapi_extra=hand_read_body(SearchQuery),
    responses={200: {"model": SearchResult}, **errors(404)},
)
async def search(request: Request, principal: Principal = Depends(require("media:read"))):
    ctx = request.app.state.ctx
    timing = ServerTiming()
    image = None
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        image, raw = await multipart_image(request, ctx.settings.media.max_upload_bytes)
        query = _search_fields(raw)
        if query.image_base64:
            raise ApiError(422, "invalid_request", "send the image once: `image` or image_base64")
    else:
        query = _search_fields(await json_object(request))
        if query.image_base64:
            image, query.image_base64 = base64_image(query.image_base64), None
    timing.mark("request")
    matches = await search_matches(ctx, principal, query, image, timing)
    return timed_json({"matches": matches}, timing)


def timed_json(body: dict, timing: ServerTiming) -> JSONResponse:
    """The body with `duration_ms` and the Server-Timing header. A JSONResponse, so FastAPI
    does not walk the (already JSON-native) body through jsonable_encoder."""
    body["duration_ms"] = round(timing.total_ms(), 2)
    return JSONResponse(body, headers={"Server-Timing": timing.header()})


def _search_fields(raw: dict) -> SearchQuery:
    json_field(raw, "filters", "a JSON object")
    try:
        return SearchQuery.model_validate(raw)
    except ValidationError as exc:
        raise invalid(exc, "invalid_request", "invalid search") from None
