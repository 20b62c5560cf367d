"""DupMedia's door: its worker's `POST /api/v1/sync-media`, the API token in the JSON body (its
worker sends no header), `media_info` (hash, phash, file_name, storage_path, gallery_name,
best_dist_config as the number it sends) and `faces` (box, embedding, thumbnail_b64). The token
is a busque key (scope media:write); the package is busque's own sync (busque.api.sync):
idempotent by hash, the original read from storage_path and checked against the hash, faces
stored as sent. A video (the document's own example, video_01.mp4) is recorded as busque's
backfill records one: its metadata, keyframe pHashes and poster frame (busque.api.video_sync)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import Field

from busque.api.errors import ApiError
from busque.api.schemas.common import errors
from busque.api.sync import SYNC_ANSWERS, SyncPackage, sync_package

router = APIRouter(prefix="/api/v1", tags=["door: DupMedia"])

# Its token travels in the body: the tenant gate lets its body through without a header key
# (under the cap on keyless bodies) and the route checks the token.
KEYLESS = ("/api/v1/sync-media",)


class DupMediaPackage(SyncPackage):
    api_token: str = Field("", max_length=500)


@router.post(
    "/sync-media",
    status_code=202,
    summary="DupMedia's sync package, token in the body",
    responses={**SYNC_ANSWERS, **errors(401, 403, 404, 429, 503)},
)
async def sync_media(package: DupMediaPackage, request: Request, response: Response):
    ctx = request.app.state.ctx
    token = package.api_token.strip()
    principal = await ctx.auth.principal(token) if token else None
    if principal is None:
        raise ApiError(401, "unauthorized", "invalid or revoked api_token")
    if not principal.allows("media:write"):
        raise ApiError(403, "forbidden", "this api_token lacks the 'media:write' scope")
    await ctx.rates.admit(principal.tenant_id, ctx.settings.quotas.of(principal.tenant_name))
    return await sync_package(ctx, principal, package, response)
