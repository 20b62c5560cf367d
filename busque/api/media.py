"""Media: ingest (202 with pHash and sha256 at once), search, BusquePet's match, the catalog."""

from __future__ import annotations

import asyncio
import hashlib
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import UploadFile

from busque.api import strict_json
from busque.api.auth import require
from busque.api.bodies import base64_image, json_object
from busque.api.errors import ApiError, invalid, not_found
from busque.api.strict_json import StrictJsonRoute
from busque.api.timing import ServerTiming
from busque.api.views import iso, job_view
from busque.auth.keys import Principal
from busque.ids import new_id
from busque.jobs.store import NewJob
from busque.media.catalog import COLLECTION_PATTERN
from busque.media.decode import MediaError, image_info
from busque.media.normalize import CONTENT_TYPES, storage_keys
from busque.media.phash import hex_to_int64, int64_to_hex, phash_bytes
from busque.models.embedding.efficientnet import pet_label
from busque.storage import InvalidKey, ObjectNotFound, validate_key

router = APIRouter(prefix="/v1", tags=["media"], route_class=StrictJsonRoute)

COLLECTION = re.compile(COLLECTION_PATTERN)
MAX_K = 100


class IngestFields(BaseModel):
    collection: str | None = Field(None, pattern=COLLECTION.pattern)
    metadata: dict[str, Any] = Field(default_factory=dict)
    k: int = Field(10, ge=1, le=MAX_K)
    object_key: str | None = Field(None, description="an uploaded object instead of `image`")


def media_error(exc: MediaError) -> ApiError:
    return ApiError(exc.status, exc.code, str(exc))


async def multipart_image(request: Request, limit: int) -> tuple[bytes, dict[str, str]]:
    """A multipart body's `image` (at most `limit` bytes) and its other, text, fields."""
    form = await request.form(max_files=1, max_fields=10)
    upload = form.get("image")
    if not isinstance(upload, UploadFile):
        raise ApiError(422, "invalid_request", "send the photo as the multipart field `image`")
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, "payload_too_large", f"images are limited to {limit} bytes")
    return data, {k: v for k, v in form.items() if k != "image" and isinstance(v, str)}


def json_field(raw: dict, name: str, what: str) -> None:
    """Parse the form field `name` (JSON text) in place, by busque's JSON rules."""
    if isinstance(raw.get(name), str):
        try:
            raw[name] = strict_json.loads(raw[name])
        except ValueError as exc:
            reason = getattr(exc, "msg", str(exc))
            raise ApiError(422, "invalid_request", f"{name} must be {what}: {reason}") from None


async def _read_upload(request: Request, limit: int) -> tuple[bytes | None, IngestFields]:
    """Multipart (`image` + form fields) or JSON (`object_key`)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        data, raw = await multipart_image(request, limit)
        json_field(raw, "metadata", "a JSON object")
        return data, _fields(raw)
    if content_type.startswith("application/json"):
        fields = _fields(await json_object(request))
        if not fields.object_key:
            raise ApiError(422, "invalid_request", "send multipart `image` or JSON `object_key`")
        return None, fields
    raise ApiError(415, "unsupported_media_type", "use multipart/form-data or application/json")


def _fields(raw: dict) -> IngestFields:
    try:
        return IngestFields.model_validate(raw)
    except ValidationError as exc:
        raise invalid(exc, "invalid_request", "invalid ingest fields") from None


def _inspect(data: bytes, max_pixels: int) -> tuple[Any, str, str]:
    """Header check (bomb guard), full decode for the pHash (catches truncation), sha256."""
    if not data:
        raise ApiError(422, "invalid_image", "the image is empty")
    try:
        info = image_info(data, max_pixels=max_pixels)
        phash = phash_bytes(data, max_pixels=max_pixels)
    except MediaError as exc:
        raise media_error(exc) from None
    return info, phash, hashlib.sha256(data).hexdigest()


@router.post("/ingest", status_code=202, summary="Ingest a photo; 202 with its pHash at once")
async def ingest(
    request: Request, response: Response, principal: Principal = Depends(require("media:write"))
):
    ctx = request.app.state.ctx
    limit = ctx.settings.media.max_upload_bytes
    data, fields = await _read_upload(request, limit)
    tenant = principal.tenant_id
    if data is None:
        try:
            key = validate_key(fields.object_key, tenant)
            data = await asyncio.to_thread(ctx.objects.get, key)
        except InvalidKey:
            raise not_found("object", fields.object_key) from None
        except ObjectNotFound:
            raise not_found("object", fields.object_key) from None
        if len(data) > limit:
            raise ApiError(413, "payload_too_large", f"images are limited to {limit} bytes")
    accepted = await accept_image(
        ctx,
        tenant,
        data,
        collection=fields.collection or ctx.settings.media.default_collection,
        metadata=fields.metadata,
        k=fields.k,
    )
    response.headers["Location"] = f"/v1/jobs/{accepted['job_id']}"
    return accepted


async def accept_image(
    ctx,
    tenant: str,
    data: bytes,
    *,
    collection: str,
    metadata: dict,
    k: int = 10,
    analyze_faces: bool = True,
) -> dict:
    """What ingest does at once: inspect, catalog it, store the original, queue its job."""
    info, phash_hex, sha256 = await asyncio.to_thread(_inspect, data, ctx.settings.media.max_pixels)
    media_id = new_id("med")
    keys = storage_keys(tenant, media_id, sha256, info.format)
    await asyncio.to_thread(
        ctx.catalog.create,
        tenant,
        collection,
        media_id=media_id,
        sha256=sha256,
        phash=hex_to_int64(phash_hex),
        width=info.width,
        height=info.height,
        format=info.format,
        size=len(data),
        metadata=metadata,
    )
    spec = ctx.registry.get("ingest")
    new = NewJob(
        tenant_id=tenant,
        model="ingest",
        params={},
        max_attempts=ctx.settings.jobs.max_attempts,
        timeout_s=spec.timeout_s or ctx.settings.jobs.default_timeout_s,
        input={
            "media_id": media_id,
            "original_key": keys["original"],
            "k": k,
            "keys": {"normalized": keys["normalized"], "thumbnail": keys["thumbnail"]},
            "analyze_faces": analyze_faces,
        },
    )
    try:
        # Only now that the row is committed: a DELETE of the last other media with these bytes
        # has either seen it and kept the original or deleted the original already (see
        # Catalog.delete).
        if await asyncio.to_thread(ctx.objects.stat, keys["original"]) is None:  # stored once
            await asyncio.to_thread(
                ctx.objects.put, keys["original"], data, CONTENT_TYPES.get(info.format)
            )
        job, _ = await asyncio.to_thread(ctx.jobs.create, new)
    except Exception:
        await asyncio.to_thread(_delete_row, ctx, tenant, media_id)  # nothing half-written
        raise
    ctx.wake_dispatcher()
    duplicate = await asyncio.to_thread(ctx.catalog.first_with_sha256, tenant, sha256, media_id)
    return {
        "job_id": job["id"],
        "media_id": media_id,
        "status": job["state"],
        "collection": collection,
        "phash": phash_hex,
        "sha256": sha256,
        "duplicate_of": duplicate["id"] if duplicate else None,
        "job": job_view(job),
    }


def media_view(ctx, row: dict) -> dict:
    ttl = ctx.settings.storage.url_ttl_s
    urls = {}
    if row["state"] == "indexed":
        urls = {
            "image_url": ctx.objects.presign_get(row["normalized_key"], ttl),
            "thumbnail_url": ctx.objects.presign_get(row["thumbnail_key"], ttl),
        }
    return {
        "id": row["id"],
        "object": "media",
        "collection": row["collection"],
        "status": row["state"],
        "sha256": row["sha256"],
        "phash": int64_to_hex(row["phash"]),
        "width": row["width"],
        "height": row["height"],
        "format": row["format"],
        "bytes": row["bytes"],
        "metadata": row["metadata"],
        "labels": row["labels"],
        "embedding_model": row["embedding_model"],
        "created_at": iso(row["created_at"]),
        "indexed_at": iso(row["indexed_at"]),
        **urls,
    }


@router.get("/media/{media_id}", summary="One media item with signed image URLs")
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


def face_view(ctx, face: dict) -> dict:
    return {
        "id": face["id"],
        "object": "face",
        "media_id": face["media_id"],
        "box": face["box"],
        "score": round(face["score"], 4),
        "person_id": face["person_id"],
        "thumbnail_url": ctx.objects.presign_get(
            face["thumbnail_key"], ctx.settings.storage.url_ttl_s
        )
        if face.get("thumbnail_key")
        else None,
    }


@router.get("/media", summary="List media, newest first")
async def list_media(
    request: Request,
    collection: Annotated[str | None, Query(pattern=COLLECTION.pattern)] = None,
    status: Literal["indexed", "pending", "all"] = "indexed",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
    principal: Principal = Depends(require("media:read")),
):
    ctx = request.app.state.ctx
    states = () if status == "all" else (status,)
    try:
        rows, next_cursor = await asyncio.to_thread(
            ctx.catalog.list,
            principal.tenant_id,
            collection=collection,
            states=states,
            limit=limit,
            cursor=cursor,
        )
    except ValueError as exc:
        raise ApiError(400, "invalid_cursor", str(exc)) from None
    data = [await asyncio.to_thread(media_view, ctx, r) for r in rows]
    return {"object": "list", "data": data, "next_cursor": next_cursor}


@router.get("/collections", summary="The tenant's collections: media counts and options")
async def collections(request: Request, principal: Principal = Depends(require("media:read"))):
    ctx = request.app.state.ctx

    def listing() -> list[dict]:
        counts = {c["collection"]: c["media"] for c in ctx.catalog.collections(principal.tenant_id)}
        options = ctx.faces.collection_options(principal.tenant_id)
        default = {"faces": ctx.settings.faces.on_ingest}
        return [
            {"collection": name, "media": counts.get(name, 0), **options.get(name, default)}
            for name in sorted(counts.keys() | options.keys())
        ]

    return {"object": "list", "data": await asyncio.to_thread(listing)}


class CollectionOptions(BaseModel):
    faces: bool = Field(description="analyse faces of photos ingested into this collection")


@router.put("/collections/{name}", summary="Set a collection's options (faces on ingest)")
async def set_collection(
    name: Annotated[str, PathParam(pattern=COLLECTION.pattern)],
    options: CollectionOptions,
    request: Request,
    principal: Principal = Depends(require("media:write")),
):
    ctx = request.app.state.ctx
    await asyncio.to_thread(
        ctx.faces.set_collection, principal.tenant_id, name, faces_on=options.faces
    )
    return {"collection": name, "faces": options.faces}


# ---- search, match, delete, duplicates ----


class SearchQuery(BaseModel):
    text: str | None = Field(None, min_length=1, max_length=1000)
    phash: str | None = Field(None, pattern=r"^[0-9a-fA-F]{16}$")
    media_id: str | None = None
    image_base64: str | None = Field(None, description="or send multipart `image`")
    k: int = Field(10, ge=1, le=MAX_K)
    collection: str | None = Field(None, pattern=COLLECTION.pattern)
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


async def _search(
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
    rows = ctx.catalog.by_index_ids(tenant, [m["media_id"] for m in found])
    matches = []
    for match in found:
        row = rows.get(match["media_id"])
        if row is None or any(row["metadata"].get(k) != v for k, v in q.filters.items()):
            continue  # deleted since, or filtered out
        view = media_view(ctx, row)
        matches.append(
            {
                "rank": len(matches) + 1,
                "media_id": row["id"],
                "score": round(match["score"], 6),
                "distance": match["distance"],
                "phash_distance": match["phash_distance"],
                "exact_duplicate": match["exact_duplicate"],
                "near_duplicate": match["near_duplicate"],
                "labels": row["labels"],
                "metadata": row["metadata"],
                "image_url": view.get("image_url"),
                "thumbnail_url": view.get("thumbnail_url"),
            }
        )
        if len(matches) == q.k:
            break
    return matches


@router.post("/search", summary="Find look-alikes by image, text, pHash or media id")
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
    matches = await _search(ctx, principal, query, image, timing)
    return _timed_json({"matches": matches}, timing)


def _timed_json(body: dict, timing: ServerTiming) -> JSONResponse:
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


class MatchRequest(BaseModel):
    """BusquePet's webhook contract, unchanged."""

    job_id: str = Field(max_length=200)
    image_path: str | None = None
    object_key: str | None = None
    phash: str | None = Field(None, pattern=r"^[0-9a-fA-F]{16}$")
    k: int = Field(5, ge=1, le=MAX_K)
    use_hybrid: bool = True
    metadata: dict[str, Any] = Field(default_factory=dict)
    collection: str | None = Field(None, pattern=COLLECTION.pattern)


@router.post("/match", summary="BusquePet's match webhook: top-k look-alikes with breed")
async def match(
    body: MatchRequest, request: Request, principal: Principal = Depends(require("media:read"))
):
    ctx = request.app.state.ctx
    timing = ServerTiming()
    image = None
    key = body.object_key or body.image_path
    if key:
        try:
            data = await asyncio.to_thread(ctx.objects.get, validate_key(key, principal.tenant_id))
        except (InvalidKey, ObjectNotFound):
            raise not_found("object", key) from None
        image = data
    elif not body.phash:
        raise ApiError(422, "invalid_request", "send object_key (or image_path) or phash")
    query = SearchQuery(
        k=body.k,
        collection=body.collection,
        mode="hybrid" if body.use_hybrid else ("visual" if image else "phash"),
        phash=None if image else body.phash,
    )
    timing.mark("request")
    found = await _search(ctx, principal, query, image, timing)
    matches = [
        {
            "rank": m["rank"],
            "image_id": m["media_id"],
            "breed": pet_label(m["labels"])["breed"],
            "score": m["score"],
            "distance": m["distance"] if m["distance"] is not None else m["phash_distance"],
            "image_path": m["image_url"],
        }
        for m in found
    ]
    return _timed_json({"job_id": body.job_id, "matches": matches}, timing)


@router.delete("/media/{media_id}", status_code=204, summary="Delete a media item everywhere")
async def delete_media(
    media_id: str, request: Request, principal: Principal = Depends(require("media:write"))
):
    ctx = request.app.state.ctx
    tenant = principal.tenant_id
    row = await asyncio.to_thread(_delete_row, ctx, tenant, media_id)
    if row is None:
        raise not_found("media", media_id)
    await ctx.matcher.remove.remote(tenant, row["collection"], row["index_id"])
    keys = _media_keys(tenant, row)
    # A job still running removes what it writes after this (busque/media/ingest.py).
    for key in [keys["normalized"], keys["thumbnail"], *row["face_keys"]]:
        await asyncio.to_thread(ctx.objects.delete, key)
    return Response(status_code=204)


def _delete_row(ctx, tenant: str, media_id: str) -> dict | None:
    """Delete the catalog row, and its original when no other media of the tenant shares it
    (content-addressed): decided and done inside the row's transaction, see Catalog.delete."""
    return ctx.catalog.delete(
        media_id, tenant, lambda row: ctx.objects.delete(_media_keys(tenant, row)["original"])
    )


def _media_keys(tenant: str, row: dict) -> dict[str, str]:
    """A media item's object keys. A pending row records none yet; its job writes them where
    storage_keys says."""
    keys = storage_keys(tenant, row["id"], row["sha256"], row["format"])
    return {name: row[f"{name}_key"] or key for name, key in keys.items()}


@router.get("/duplicates", summary="Exact (sha256) and near (pHash) duplicate groups")
async def duplicates(
    request: Request,
    collection: Annotated[str | None, Query(pattern=COLLECTION.pattern)] = None,
    radius: Annotated[
        int | None, Query(ge=0, le=32, description="the pHash Hamming distance of near groups")
    ] = None,
    threshold: Annotated[int | None, Query(ge=0, le=32, description="the same as radius")] = None,
    principal: Principal = Depends(require("media:read")),
):
    ctx = request.app.state.ctx
    tenant = principal.tenant_id
    collection = collection or ctx.settings.media.default_collection
    if None not in (radius, threshold) and radius != threshold:
        raise ApiError(422, "invalid_request", "radius and threshold are one parameter: send one")
    radius = radius if radius is not None else threshold
    radius = ctx.settings.index.duplicate_radius if radius is None else radius
    exact = await asyncio.to_thread(ctx.catalog.exact_duplicates, tenant, collection)
    near_ids = await ctx.matcher.near_groups.remote(tenant, collection, radius)
    rows = await asyncio.to_thread(
        ctx.catalog.by_index_ids, tenant, [i for group in near_ids for i in group]
    )
    near = [[rows[i]["id"] for i in group if i in rows] for group in near_ids]
    return {
        "collection": collection,
        "radius": radius,
        "exact": exact,
        "near": [g for g in near if len(g) > 1],
    }
