"""What ingest stores for an image: the original (content-addressed, so a duplicate is stored
once), a normalised JPEG (upright, RGB, size-capped) and a small WebP thumbnail.

`prepare` makes both from the original's bytes doing as little work as it can: a JPEG that is
already an upright RGB JPEG within the cap is its own normalised rendition (no re-encode), and
JPEGs are decoded by libjpeg at 1/2..1/8 scale to the size the renditions and the models need.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass

from PIL import Image

from busque.media.decode import DecodedImage, decode_opened, open_image, orientation
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


# A JPEG decoded at a reduced scale keeps that size as its normalised rendition when its long side
# is at least this share of the cap: a 4000x3000 photo decodes at 1/2 to 2000x1500, instead of
# in full (4x the pixels) and then resampled to 2048x1536.
DRAFT_SLACK = 0.9


def prepare(
    data: bytes,
    *,
    max_pixels: int,
    max_side: int = 2048,
    thumb_side: int = 256,
    analysis_side: int | None = None,
    sha256: str | None = None,
) -> tuple[DecodedImage, Renditions]:
    """The original's bytes -> (the decoded image, its renditions). The decoded image is upright
    RGB, as large as the normalised rendition, or, when the original is its own normalised
    rendition, at least `analysis_side` (what the models need; None: only the thumbnail) on the
    long side where the original has that many pixels. `sha256`: the bytes' hash when the
    caller has it already (else computed). Raises MediaError like decode_image."""
    decoded, as_is = decode_for_renditions(
        data,
        max_pixels=max_pixels,
        max_side=max_side,
        thumb_side=thumb_side,
        analysis_side=analysis_side,
        sha256=sha256,
    )
    if as_is:
        normalized = data
    else:
        out = io.BytesIO()
        decoded.image.save(out, "JPEG", quality=90)
        normalized = out.getvalue()
    thumb = io.BytesIO()
    _fit(decoded.image, thumb_side).save(thumb, "WEBP", quality=80)
    return decoded, Renditions(normalized, thumb.getvalue())


def decode_for_renditions(
    data: bytes,
    *,
    max_pixels: int,
    max_side: int = 2048,
    thumb_side: int = 256,
    analysis_side: int | None = None,
    sha256: str | None = None,
) -> tuple[DecodedImage, bool]:
    """`prepare`'s decode alone: (the decoded image, whether the original is its own normalised
    rendition), for a caller that needs the pixels but not the renditions (a reindex)."""
    img, info = open_image(data, max_pixels=max_pixels)
    as_is = _normalized_as_is(img, max_side)
    if as_is:
        draft_side = max(thumb_side, analysis_side or 0)
    else:
        draft_side = math.ceil(max_side * DRAFT_SLACK) if max(img.size) > max_side else None
    image, width, height = decode_opened(img, info, draft_side)
    if not as_is and max(image.size) > max_side:
        image = _fit(image, max_side)
    decoded = DecodedImage(
        image=image,
        format=info.format,
        width=width,
        height=height,
        sha256=sha256 or hashlib.sha256(data).hexdigest(),
        bytes=len(data),
    )
    return decoded, as_is


def _normalized_as_is(img: Image.Image, max_side: int) -> bool:
    """An upright baseline RGB JPEG within the cap already is what the normalised rendition is
    (MPO files carry more pictures than the first, so they are re-encoded)."""
    return (
        img.format == "JPEG"
        and img.mode == "RGB"
        and max(img.size) <= max_side
        and orientation(img) == 1
    )


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
