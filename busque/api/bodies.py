"""Reading request bodies the same way everywhere: JSON objects and base64 images."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import Request

from busque.api.errors import ApiError
from busque.api.strict_json import json_or_absent


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
