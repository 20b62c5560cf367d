"""BusquePet's door: the Python webhook's `POST /v1/match` contract, as its Go API calls it.

`image_path` is what the Go API sends: an absolute path in the storage it shares with the
webhook, read here from `doors.busquepet_storage_dir` (the same files, mounted on busque's
nodes; `doors.busquepet_sent_root` maps the Go API's root to it). A path outside that root, or
through a link out of it, is a 404 and nothing outside is ever opened; a path inside it that
names no file is the webhook's 400. A relative `image_path` (or `object_key`) is an uploaded
object of the tenant, as before. The answer is the webhook's: `{job_id, matches: [{rank,
image_id, breed, score, distance, image_path}], metadata, duration_ms}`, the request's
`metadata` given back as the webhook did, and `breed` the one the photo was ingested with
(metadata `breed`), else its ImageNet label's. The WebSocket side of BusquePet (its status names)
is `/v1/ws?dialect=busquepet` (busque/api/ws_dialects.py)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path, PurePosixPath
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from busque.api.auth import require
from busque.api.bodies import STRICT_JSON_BODY, stored_image
from busque.api.errors import ApiError
from busque.api.schemas.common import errors
from busque.api.search import MAX_K, SearchQuery, search_matches
from busque.api.timing import ServerTiming
from busque.auth.keys import Principal
from busque.config import DoorSettings
from busque.media.catalog import COLLECTION_PATTERN
from busque.media.matches import breed_of

router = APIRouter(prefix="/v1", tags=["door: BusquePet"])


class MatchRequest(BaseModel):
    model_config = STRICT_JSON_BODY
    job_id: str = Field(max_length=200)
    image_path: str | None = Field(None, max_length=4096)
    object_key: str | None = None
    phash: str | None = Field(None, pattern=r"^[0-9a-fA-F]{16}$")
    k: int = Field(5, ge=1, le=MAX_K)
    use_hybrid: bool = True
    metadata: dict[str, Any] | None = None
    collection: str | None = Field(None, pattern=COLLECTION_PATTERN)


def shared_file(doors: DoorSettings, image_path: str) -> Path:
    """The file an absolute `image_path` names in the shared storage, or a 404 when it lies
    outside it (also through `..` or a symbolic link)."""
    outside = ApiError(404, "image_not_found", f"{image_path!r} is outside the shared storage")
    if doors.busquepet_storage_dir is None:
        raise outside
    root = Path(doors.busquepet_storage_dir).resolve()
    sent_root = PurePosixPath(doors.busquepet_sent_root or str(root))
    sent = PurePosixPath(os.path.normpath(image_path))
    if ".." in PurePosixPath(image_path).parts or not sent.is_relative_to(sent_root):
        raise outside
    found = (root / sent.relative_to(sent_root)).resolve()
    if not found.is_relative_to(root):
        raise outside
    return found


def _read_capped(path: Path, max_bytes: int) -> bytes:
    with path.open("rb") as file:
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ApiError(
            413,
            "payload_too_large",
            f"images are limited to {max_bytes} bytes",
            {"max_bytes": max_bytes},
        )
    return data


async def _image(ctx, principal: Principal, body: MatchRequest) -> bytes | None:
    limit = ctx.settings.media.max_upload_bytes
    doors = ctx.settings.doors
    if body.image_path and body.image_path.startswith("/"):
        if doors.busquepet_tenant and principal.tenant_name != doors.busquepet_tenant:
            raise ApiError(404, "image_not_found", "this key may not read the shared storage")
        path = shared_file(doors, body.image_path)
        if not await asyncio.to_thread(path.is_file):
            raise ApiError(400, "image_not_found", f"Image path does not exist: {body.image_path}")
        return await asyncio.to_thread(_read_capped, path, limit)
    key = body.object_key or body.image_path
    if key:
        return await stored_image(ctx.objects, key, principal.tenant_id, limit)
    return None


class PetMatch(BaseModel):
    rank: int
    image_id: str
    breed: str | None
    score: float
    distance: float | None
    image_path: str | None = Field(description="a presigned URL of the matched photo")


class MatchAnswer(BaseModel):
    job_id: Any
    matches: list[PetMatch]
    metadata: Any
    duration_ms: int


@router.post(
    "/match",
    summary="BusquePet's match webhook: top-k look-alikes with breed",
    responses={200: {"model": MatchAnswer}, **errors(400, 404)},
)
async def match(
    body: MatchRequest, request: Request, principal: Principal = Depends(require("media:read"))
):
    ctx = request.app.state.ctx
    timing = ServerTiming()
    image = await _image(ctx, principal, body)
    if image is None and not body.phash:
        raise ApiError(422, "invalid_request", "send image_path (or object_key) or phash")
    query = SearchQuery(
        k=body.k,
        collection=body.collection,
        mode="hybrid" if body.use_hybrid else ("visual" if image else "phash"),
        phash=None if image else body.phash,
    )
    timing.mark("request")
    found = await search_matches(ctx, principal, query, image, timing)
    matches = [
        {
            "rank": m["rank"],
            "image_id": m["media_id"],
            "breed": breed_of(m["labels"], m["metadata"]),
            "score": m["score"],
            "distance": m["distance"] if m["distance"] is not None else m["phash_distance"],
            "image_path": m["image_url"],
        }
        for m in found
    ]
    answer = {"job_id": body.job_id, "matches": matches, "metadata": body.metadata}
    # An integer, as the webhook sent it: BusquePet's Go API reads duration_ms into an int64
    # (a fraction would fail its whole decode).
    answer["duration_ms"] = round(timing.total_ms())
    return JSONResponse(answer, headers={"Server-Timing": timing.header()})
