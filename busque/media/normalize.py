"""What ingest stores for an image: the original (content-addressed, so a duplicate is stored
once), a normalised JPEG (upright, RGB, size-capped) and a small WebP thumbnail."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

from busque.media.decode import DecodedImage
from busque.storage import tenant_key

EXTENSIONS = {
    "jpeg": ".jpg",
    "png": ".png",
    "webp": ".webp",
    "gif": ".gif",
    "bmp": ".bmp",
    "tiff": ".tiff",
    "heif": ".heic",
}
CONTENT_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
    "heif": "image/heic",
}


@dataclass(frozen=True)
class Renditions:
    normalized: bytes  # JPEG
    thumbnail: bytes  # WebP


def storage_keys(tenant_id: str, media_id: str, sha256: str, fmt: str) -> dict[str, str]:
    ext = EXTENSIONS.get(fmt, ".bin")
    return {
        "original": tenant_key(tenant_id, "originals", sha256[:2], f"{sha256}{ext}"),
        "normalized": tenant_key(tenant_id, "normalized", f"{media_id}.jpg"),
        "thumbnail": tenant_key(tenant_id, "thumbs", f"{media_id}.webp"),
    }


def renditions(decoded: DecodedImage, max_side: int = 2048, thumb_side: int = 256) -> Renditions:
    image = decoded.image if max(decoded.image.size) <= max_side else _fit(decoded.image, max_side)
    normalized = io.BytesIO()
    image.save(normalized, "JPEG", quality=90)
    thumb = io.BytesIO()
    _fit(image, thumb_side).save(thumb, "WEBP", quality=80)
    return Renditions(normalized.getvalue(), thumb.getvalue())


def _fit(image: Image.Image, side: int) -> Image.Image:
    copy = image.copy()
    copy.thumbnail((side, side), Image.Resampling.LANCZOS)
    return copy


def normalized_jpeg(decoded: DecodedImage, max_side: int = 2048) -> bytes:
    """Only the normalised JPEG (what the embedder sees), for queries that store nothing."""
    image = decoded.image if max(decoded.image.size) <= max_side else _fit(decoded.image, max_side)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()
