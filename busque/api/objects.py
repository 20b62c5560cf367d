"""Uploads (presigned PUT tickets) and, for the local backend, the signed object URLs themselves.

With S3 the URLs point at S3; with the local directory they point here, and the HMAC signature
in the URL is the credential (no API key), like S3's presigned URLs.
"""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from busque.api.auth import require
from busque.api.bodies import STRICT_JSON_BODY
from busque.api.errors import ApiError
from busque.api.schemas.jobs import Upload
from busque.api.strict_json import StrictJsonRoute
from busque.api.views import iso
from busque.auth.keys import Principal
from busque.ids import new_id
from busque.storage import (
    InvalidKey,
    LocalObjectStore,
    ObjectNotFound,
    SignatureError,
    TooLarge,
    safe_filename,
    tenant_key,
    validate_key,
)

router = APIRouter(prefix="/v1", tags=["objects"], route_class=StrictJsonRoute)


class UploadRequest(BaseModel):
    model_config = STRICT_JSON_BODY
    filename: str = Field("upload.bin", max_length=255)
    content_type: str | None = Field(
        None,
        max_length=200,
        # type/subtype and parameters, no control characters (it becomes a signed header)
        pattern=r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(?:\s*;\s*[A-Za-z0-9!#$&^_.+-]+=[^\x00-\x1f\x7f;]+)*$",
    )


@router.post(
    "/uploads",
    status_code=201,
    summary="Get a presigned PUT URL to upload a file",
    responses={201: {"model": Upload}},
)
async def create_upload(
    body: UploadRequest, request: Request, principal: Principal = Depends(require("objects:write"))
):
    return await new_upload(request.app.state.ctx, principal.tenant_id, body)


async def new_upload(ctx, tenant_id: str, body: UploadRequest) -> dict:
    """A presigned PUT for a new object under the tenant's uploads (the front doors' too)."""
    ttl = ctx.settings.storage.url_ttl_s
    key = tenant_key(tenant_id, "uploads", new_id("up"), safe_filename(body.filename))
    url = await asyncio.to_thread(ctx.objects.presign_put, key, ttl, body.content_type)
    headers = {"Content-Type": body.content_type} if body.content_type else {}
    return {
        "object_key": key,
        "upload_url": url,
        "method": "PUT",
        "headers": headers,
        "max_bytes": ctx.settings.serve.max_body_bytes,
        "expires_at": iso(time.time() + ttl),
    }


def _signed_local(request: Request, key: str, method: str, expires: str, sig: str):
    store = request.app.state.ctx.objects
    if not isinstance(store, LocalObjectStore):
        raise ApiError(404, "not_found", "objects are served by the S3 backend, not this API")
    try:
        validate_key(key)
        store.verify_signature(method, key, expires, sig)
    except InvalidKey as exc:
        raise ApiError(400, "invalid_key", str(exc)) from None
    except SignatureError as exc:
        raise ApiError(403, "invalid_signature", f"signed URL rejected: {exc}") from None
    return store


@router.get(
    "/objects/{key:path}",
    summary="Download through a signed URL (local backend)",
    include_in_schema=False,
)
async def download_object(
    key: str, request: Request, expires: str = Query(""), sig: str = Query("")
):
    store = _signed_local(request, key, "GET", expires, sig)
    try:
        chunks, info = await asyncio.to_thread(store.open_read, key)
    except ObjectNotFound:
        raise ApiError(404, "object_not_found", f"no object {key!r}") from None
    return StreamingResponse(
        chunks, media_type=info.content_type, headers={"Content-Length": str(info.size)}
    )


@router.put(
    "/objects/{key:path}",
    summary="Upload through a signed URL (local backend)",
    include_in_schema=False,
)
async def upload_object(
    key: str,
    request: Request,
    expires: str = Query(""),
    sig: str = Query(""),
    method: str = Query(""),
):
    if method != "PUT":
        raise ApiError(403, "invalid_signature", "this URL is not an upload URL")
    store = _signed_local(request, key, "PUT", expires, sig)
    ctx = request.app.state.ctx
    limit = ctx.settings.serve.max_body_bytes
    tenant = key.split("/", 1)[0]  # a signed key is the tenant's (busque.storage.keys)
    ctx.bodies.take(tenant)  # as for bodies sent with a key (busque.api.tenant_gate)
    try:
        body = bytearray()
        async for chunk in request.stream():  # the body-limit middleware caps this stream too
            body += chunk
    finally:
        ctx.bodies.give_back(tenant)
    try:
        info = await asyncio.to_thread(
            store.put_stream, key, [bytes(body)], request.headers.get("content-type"), limit
        )
    except TooLarge:
        raise ApiError(413, "payload_too_large", f"uploads are limited to {limit} bytes") from None
    return {"object_key": info.key, "size": info.size, "etag": info.etag}
