"""Reading request bodies the same way everywhere: JSON objects, multipart images and base64
images."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from fastapi import Request
from pydantic import ConfigDict
from starlette.datastructures import UploadFile

from busque.api import strict_json
from busque.api.errors import ApiError, not_found
from busque.api.strict_json import json_or_absent
from busque.storage import InvalidKey, ObjectNotFound, ObjectStore, ObjectTooLarge, validate_key

# JSON bodies take JSON's types as sent: "5" is not a number and true is not 1 (pydantic's lax
# default converts both). Multipart forms, whose fields are all text, stay lax.
STRICT_JSON_BODY = ConfigDict(strict=True)


async def json_object(request: Request) -> dict[str, Any]:
    """The JSON body; 400 `invalid_json` if it is not JSON (or not JSON busque takes:
    busque.api.strict_json). A non-object body comes back as
    {"_": body}, so the caller's schema names what is wrong with it."""
    if not json_or_absent(request.headers.get("content-type")):
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    try:
        raw = await request.json()
    except ValueError as exc:  # json.JSONDecodeError: busque's rules (strict_json) say why
        reason = getattr(exc, "msg", "")
        raise ApiError(
            400, "invalid_json", f"the request body is not valid JSON: {reason}"
        ) from None
    return raw if isinstance(raw, dict) else {"_": raw}


def base64_image(value: str, field: str = "image_base64") -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise ApiError(422, "invalid_request", f"{field} is not base64") from None


async def multipart_image(
    request: Request, limit: int, field: str = "image"
) -> tuple[bytes, dict[str, str]]:
    """A multipart body's image (the file in `field`, at most `limit` bytes) and its other,
    text, fields."""
    form = await request.form(max_files=1, max_fields=10)
    upload = form.get(field)
    if not isinstance(upload, UploadFile):
        raise ApiError(422, "invalid_request", f"send the photo as the multipart field `{field}`")
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, "payload_too_large", f"images are limited to {limit} bytes")
    return data, {k: v for k, v in form.items() if k != field and isinstance(v, str)}


def json_field(raw: dict, name: str, what: str) -> None:
    """Parse the form field `name` (JSON text) in place, by busque's JSON rules."""
    if isinstance(raw.get(name), str):
        try:
            raw[name] = strict_json.loads(raw[name])
        except ValueError as exc:
            reason = getattr(exc, "msg", str(exc))
            raise ApiError(422, "invalid_request", f"{name} must be {what}: {reason}") from None


async def stored_image(objects: ObjectStore, key: str, tenant: str, max_bytes: int) -> bytes:
    """An uploaded object named in a request, read with a cap (a presigned PUT carries no size
    bound): 404 `object_not_found` if it is not the tenant's, 413 if larger than max_bytes."""
    try:
        return await asyncio.to_thread(objects.get, validate_key(key, tenant), max_bytes)
    except (InvalidKey, ObjectNotFound):
        raise not_found("object", key) from None
    except ObjectTooLarge:
        raise ApiError(
            413,
            "payload_too_large",
            f"images are limited to {max_bytes} bytes",
            {"max_bytes": max_bytes},
        ) from None
