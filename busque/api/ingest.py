"""`POST /v1/ingest`: a photo in (multipart `image` or an uploaded `object_key`), 202 at once with
its pHash and sha256; its ingest job does the rest. `accept_image` is that first step, shared with
`POST /v1/media/sync`."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field, ValidationError

from busque.api.auth import require
from busque.api.bodies import json_field, json_object, multipart_image, stored_image
from busque.api.errors import ApiError, invalid, media_error
from busque.api.media import delete_row
from busque.api.schemas.common import errors, form_body
from busque.api.schemas.media import Accepted as AcceptedView
from busque.api.search import MAX_K
from busque.api.strict_json import StrictJsonRoute
from busque.api.views import job_view
from busque.auth.keys import Principal
from busque.config import MediaSettings
from busque.ids import new_id
from busque.jobs.store import NewJob
from busque.media.catalog import COLLECTION_PATTERN
from busque.media.decode import MediaError, image_info
from busque.media.normalize import CONTENT_TYPES, storage_keys
from busque.media.phash import hex_to_int64, phash_and_variants
from busque.storage import ObjectStore

logger = logging.getLogger("busque.api")

router = APIRouter(prefix="/v1", tags=["media"], route_class=StrictJsonRoute)


class IngestFields(BaseModel):
    collection: str | None = Field(None, pattern=COLLECTION_PATTERN)
    metadata: dict[str, Any] = Field(default_factory=dict)
    k: int = Field(10, ge=1, le=MAX_K)
    object_key: str | None = Field(None, description="an uploaded object instead of `image`")


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


def check_metadata(metadata: dict, media: MediaSettings) -> None:
    """A photo's metadata is stored with it and returned by every list and search: capped."""
    size = len(json.dumps(metadata, ensure_ascii=False).encode())
    if size > media.max_metadata_bytes:
        raise ApiError(
            413,
            "payload_too_large",
            f"metadata is {size} bytes of JSON; the limit is {media.max_metadata_bytes}",
            {"max_bytes": media.max_metadata_bytes},
        )
    if _depth(metadata) > media.max_metadata_depth:
        raise ApiError(
            422,
            "invalid_request",
            f"metadata is nested deeper than {media.max_metadata_depth} levels",
        )


def _depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _fields(raw: dict) -> IngestFields:
    try:
        return IngestFields.model_validate(raw)
    except ValidationError as exc:
        raise invalid(exc, "invalid_request", "invalid ingest fields") from None


def _inspect(data: bytes, max_pixels: int) -> tuple[Any, str, bytes, str]:
    """Header check (bomb guard), full decode for the pHash and its turns' and mirrors'
    (catches truncation), sha256."""
    if not data:
        raise ApiError(422, "invalid_image", "the image is empty")
    try:
        info = image_info(data, max_pixels=max_pixels)
        phash, variants = phash_and_variants(data, max_pixels=max_pixels)
    except MediaError as exc:
        raise media_error(exc) from None
    return info, phash, variants, hashlib.sha256(data).hexdigest()


# The body is read by hand (a streamed multipart with a size cap, or JSON): declared here.
# Swagger UI pre-fills the form with the examples (without them it sends `metadata=string`).
INGEST_BODY = form_body(
    "image",
    {
        "collection": {"type": "string", "pattern": COLLECTION_PATTERN, "example": "default"},
        "metadata": {"type": "string", "description": "a JSON object", "example": "{}"},
        "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "example": 10},
    },
    json=IngestFields,
)


@router.post(
    "/ingest",
    status_code=202,
    summary="Ingest a photo; 202 with its pHash at once",
    openapi_extra=INGEST_BODY,
    responses={202: {"model": AcceptedView}, **errors(404)},
)
async def ingest(
    request: Request, response: Response, principal: Principal = Depends(require("media:write"))
):
    ctx = request.app.state.ctx
    limit = ctx.settings.media.max_upload_bytes
    data, fields = await _read_upload(request, limit)
    check_metadata(fields.metadata, ctx.settings.media)
    tenant = principal.tenant_id
    if data is None:
        data = await stored_image(ctx.objects, fields.object_key, tenant, limit)
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


@dataclass
class Accepted:
    """What is known of a new original before its job: its facts, and how to store it."""

    sha256: str
    phash: str  # hex
    width: int
    height: int
    format: str
    size: int
    store: Callable[[ObjectStore, str], object]  # writes the original's bytes at a key
    phash_variants: bytes | None = None  # its turns' and mirrors' (none for a video)
    original_key: str | None = None  # default: content-addressed by format (storage_keys)
    source: bytes | None = None  # a JPEG the job decodes instead (a video's poster frame)


def image_original(data: bytes, max_pixels: int) -> Accepted:
    """A photo's bytes, inspected (ApiError when they are no photo busque takes)."""
    info, phash_hex, variants, sha256 = _inspect(data, max_pixels)
    return Accepted(
        sha256=sha256,
        phash=phash_hex,
        phash_variants=variants,
        width=info.width,
        height=info.height,
        format=info.format,
        size=len(data),
        store=lambda objects, key: objects.put(key, data, CONTENT_TYPES.get(info.format)),
    )


async def accept_image(
    ctx, tenant: str, data: bytes, *, collection: str, metadata: dict, k: int = 10
) -> dict:
    """What ingest does at once: inspect, catalog it, store the original, queue its job."""
    original = await asyncio.to_thread(image_original, data, ctx.settings.media.max_pixels)
    return await accept_media(ctx, tenant, original, collection=collection, metadata=metadata, k=k)


async def accept_media(
    ctx,
    tenant: str,
    original: Accepted,
    *,
    collection: str,
    metadata: dict,
    k: int = 10,
    analyze_faces: bool = True,
) -> dict:
    """Catalog an original, store it and queue its ingest job; for photos and synced videos."""
    media_id = new_id("med")
    sha256 = original.sha256
    keys = storage_keys(tenant, media_id, sha256, original.format)
    keys["original"] = original.original_key or keys["original"]
    spec = ctx.registry.get("ingest")
    job_input = {
        "media_id": media_id,
        "original_key": keys["original"],
        "k": k,
        "keys": {"normalized": keys["normalized"], "thumbnail": keys["thumbnail"]},
        "analyze_faces": analyze_faces,
    }
    if original.source is not None:  # stored where the job writes its normalized rendition
        job_input["source_key"] = keys["normalized"]
    new = NewJob(
        tenant_id=tenant,
        model="ingest",
        params={},
        max_attempts=ctx.settings.jobs.max_attempts,
        timeout_s=spec.timeout_s or ctx.settings.jobs.default_timeout_s,
        input=job_input,
    )
    # Looked up before anything is written: once the job exists the ingest is accepted, and
    # a database error after that would answer 503 for a photo that is then indexed.
    duplicate = await asyncio.to_thread(ctx.catalog.first_with_sha256, tenant, sha256, media_id)
    # These bytes were resolved away as a duplicate before (still in the trash).
    rejected = await asyncio.to_thread(ctx.resolutions.rejected_before, tenant, sha256)
    await asyncio.to_thread(
        ctx.catalog.create,
        tenant,
        collection,
        media_id=media_id,
        sha256=sha256,
        phash=hex_to_int64(original.phash),
        phash_variants=original.phash_variants,
        width=original.width,
        height=original.height,
        format=original.format,
        size=original.size,
        metadata=metadata,
        job_id=new.id,  # a row whose job never comes to exist is removed by the janitor
    )
    try:
        # Only now that the row is committed: a deletion of the original these bytes share
        # either sees this row and keeps it, or happened already (busque.media.janitor).
        if await asyncio.to_thread(ctx.objects.stat, keys["original"]) is None:  # stored once
            await asyncio.to_thread(original.store, ctx.objects, keys["original"])
        if original.source is not None:
            await asyncio.to_thread(
                ctx.objects.put, keys["normalized"], original.source, "image/jpeg"
            )
        job, _ = await asyncio.to_thread(ctx.jobs.create, new)
    except Exception:
        try:  # nothing half-written: the row goes now, its objects when the store answers
            await asyncio.to_thread(delete_row, ctx, tenant, media_id)
        except Exception:
            logger.exception("undoing media %s failed: the janitor removes it later", media_id)
        raise
    ctx.wake_dispatcher()
    return {
        "job_id": job["id"],
        "media_id": media_id,
        "status": job["state"],
        "collection": collection,
        "phash": original.phash,
        "sha256": sha256,
        "duplicate_of": duplicate["id"] if duplicate else None,
        "previously_rejected": rejected,
        "job": job_view(job),
    }
