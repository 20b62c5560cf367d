"""`POST /v1/media/sync`: DupMedia's sync package, so an edge worker can push what it computed
elsewhere (sha256, pHash, faces with embeddings and thumbnails) for a photo or video it uploaded
(a video: busque.api.video_sync).

Idempotent by hash: a photo whose sha256 the tenant already has answers 200 with its media id and
changes nothing. Otherwise the uploaded original (`storage_path`, a key from POST /v1/uploads) is
checked against the hash, catalogued and queued for ingest like POST /v1/ingest; faces in the
package are stored as sent (and clustered into people) instead of being detected again.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field, field_validator

from busque.api.auth import require
from busque.api.bodies import stored_image
from busque.api.errors import ApiError
from busque.api.ingest import Accepted, accept_media, image_original
from busque.api.schemas.common import errors
from busque.api.schemas.media import AlreadySynced, Synced
from busque.api.strict_json import StrictJsonRoute
from busque.api.video_sync import video_original
from busque.auth.keys import Principal
from busque.faces.analyze import store_faces
from busque.media.catalog import COLLECTION_PATTERN
from busque.media.decode import MediaError, decode_image
from busque.media.library import kind_of

router = APIRouter(prefix="/v1", tags=["media"], route_class=StrictJsonRoute)

EMBEDDING_DIM = 128  # the face index's (busque/faces/index.py)
# The face model's embeddings have an L2 norm of about 1: far larger is no embedding, and would
# overflow float32 distances.
MAX_EMBEDDING_NORM = 10.0


class MediaInfo(BaseModel):
    hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the original")
    phash: str | None = Field(None, pattern=r"^[0-9a-fA-F]{16}$")
    file_name: str = Field(max_length=255)
    storage_path: str = Field(max_length=1024, description="the uploaded original's object key")
    gallery_name: str | None = Field(None, pattern=COLLECTION_PATTERN)
    best_dist_config: float | dict[str, Any] | None = Field(
        None, description="the edge's distance setting, kept in the photo's metadata"
    )


class SyncFace(BaseModel):
    box: list[int] = Field(
        min_length=4, max_length=4, description="x, y, w, h in the photo's pixels"
    )
    embedding: list[float] = Field(min_length=EMBEDDING_DIM, max_length=EMBEDDING_DIM)
    thumbnail_b64: str | None = Field(None, max_length=2_000_000)
    score: float = Field(1.0, ge=0, le=1)

    @field_validator("box")
    @classmethod
    def _box(cls, box: list[int]) -> list[int]:
        x, y, w, h = box
        if x < 0 or y < 0 or w <= 0 or h <= 0:
            raise ValueError("box is x, y, w, h: x and y must be >= 0, w and h > 0")
        return box

    @field_validator("embedding")
    @classmethod
    def _embedding(cls, embedding: list[float]) -> list[float]:
        if not all(math.isfinite(v) for v in embedding):
            raise ValueError("embedding values must be finite")
        if math.hypot(*embedding) > MAX_EMBEDDING_NORM:
            raise ValueError(f"embedding's L2 norm must be at most {MAX_EMBEDDING_NORM}")
        return embedding


class SyncPackage(BaseModel):
    media_info: MediaInfo
    faces: list[SyncFace] = Field(default_factory=list, max_length=200)


SYNC_ANSWERS = {
    202: {"model": Synced, "description": "New: cataloged, its ingest job queued"},
    200: {"model": AlreadySynced, "description": "These bytes were synced before"},
}


@router.post(
    "/media/sync",
    status_code=202,
    summary="DupMedia's sync package (idempotent by hash)",
    responses={**SYNC_ANSWERS, **errors(404)},
)
async def sync_media(
    package: SyncPackage,
    request: Request,
    response: Response,
    principal: Principal = Depends(require("media:write")),
):
    return await sync_package(request.app.state.ctx, principal, package, response)


async def sync_package(ctx, principal: Principal, package: SyncPackage, response: Response):
    """Catalog a synced photo or video (or answer the one the tenant has with that hash); for
    DupMedia's door too."""
    tenant, info = principal.tenant_id, package.media_info
    existing = await asyncio.to_thread(ctx.catalog.first_with_sha256, tenant, info.hash)
    if existing is not None:
        response.status_code = 200
        return {"media_id": existing["id"], "created": False, "collection": existing["collection"]}
    async with _original(ctx, tenant, info) as (original, facts):
        for i, face in enumerate(package.faces):  # every face is checked before anything
            _check_box(face, i, original.width, original.height)
        thumbnails = await asyncio.to_thread(
            lambda: [_thumbnail(face, i) for i, face in enumerate(package.faces)]
        )
        metadata = {
            "file_name": info.file_name,
            "gallery_name": info.gallery_name,
            "best_dist_config": info.best_dist_config,
            "edge_phash": info.phash,
            "source": "sync",
            **facts,
        }
        accepted = await accept_media(
            ctx,
            tenant,
            original,
            collection=info.gallery_name or ctx.settings.media.default_collection,
            metadata=metadata,
            analyze_faces=not package.faces,
        )
    faces = []
    if package.faces:
        faces = await asyncio.to_thread(
            _store_faces, ctx, tenant, accepted["media_id"], package.faces, thumbnails
        )
    response.headers["Location"] = f"/v1/jobs/{accepted['job_id']}"
    return {**accepted, "created": True, "faces": faces}


@asynccontextmanager
async def _original(ctx, tenant: str, info: MediaInfo) -> AsyncIterator[tuple[Accepted, dict]]:
    """The synced original, read from storage_path and checked against the hash, and what its
    metadata adds (a video's facts)."""
    if "video" in (kind_of(info.storage_path), kind_of(info.file_name)):
        async with video_original(ctx, tenant, info.storage_path, info.hash) as found:
            yield found
        return
    media = ctx.settings.media
    data = await stored_image(ctx.objects, info.storage_path, tenant, media.max_upload_bytes)
    if hashlib.sha256(data).hexdigest() != info.hash:
        raise ApiError(422, "hash_mismatch", "the object at storage_path does not have that hash")
    yield await asyncio.to_thread(image_original, data, media.max_pixels), {}


def _check_box(face: SyncFace, index: int, width: int, height: int) -> None:
    x, y, w, h = face.box
    if x + w > width or y + h > height:
        raise _face_error(
            index, "box", f"{face.box} (x, y, w, h) is outside the {width}x{height} original"
        )


def _thumbnail(face: SyncFace, index: int) -> bytes | None:
    if face.thumbnail_b64 is None:
        return None
    try:
        data = base64.b64decode(face.thumbnail_b64, validate=True)
        decoded = decode_image(data, max_pixels=4_000_000)  # in full: truncation is refused
    except (ValueError, MediaError) as exc:
        raise _face_error(index, "thumbnail_b64", f"is not a base64 image: {exc}") from None
    if decoded.format != "jpeg":  # face thumbnails are stored and served as JPEGs
        out = io.BytesIO()
        decoded.image.save(out, "JPEG", quality=90)
        data = out.getvalue()
    return data


def _face_error(index: int, field: str, message: str) -> ApiError:
    """A 422 naming faces[index].field, its details shaped like a schema error's."""
    error = {"loc": ["body", "faces", index, field], "msg": message, "type": "value_error"}
    return ApiError(
        422, "invalid_request", f"faces[{index}].{field} {message}", {"errors": [error]}
    )


def _store_faces(ctx, tenant: str, media_id: str, faces: list[SyncFace], thumbnails) -> list:
    found = [
        {"box": f.box, "score": f.score, "embedding": f.embedding, "thumbnail": thumbnail}
        for f, thumbnail in zip(faces, thumbnails, strict=True)
    ]
    stored = store_faces(
        ctx.objects,
        ctx.faces,
        ctx.face_index,
        ctx.settings.faces,
        tenant,
        media_id,
        found,
        "dupmedia-sync",
    )
    return [{"id": r["id"], "box": r["box"], "person_id": r["person_id"]} for r in stored or []]
