"""Decode uploaded image bytes into an oriented RGB Pillow image, refusing bombs and junk.

The pixel limit is checked on the header size, before any pixel is decoded: Image.open is lazy,
so a 20000x20000 PNG of a few KB is refused without allocating 1.2 GB. Pillow's own global
limits (MAX_IMAGE_PIXELS, LOAD_TRUNCATED_IMAGES) are left as they are.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import struct
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

try:  # HEIC/HEIF when the optional wheel is installed
    from pillow_heif import register_heif_opener

    register_heif_opener()
    HEIF_FORMATS: dict[str, str] = {"HEIF": "heic"}
except ImportError:  # pragma: no cover - depends on the environment
    HEIF_FORMATS = {}

DEFAULT_MAX_PIXELS = 50_000_000

# Pillow format name -> ours. MPO is what Pillow calls the multi-picture JPEGs many cameras write.
FORMATS = {
    "JPEG": "jpeg",
    "MPO": "jpeg",
    "PNG": "png",
    "WEBP": "webp",
    "GIF": "gif",
    "BMP": "bmp",
    "TIFF": "tiff",
    **HEIF_FORMATS,
}
# The plugins Image.open may try (Pillow's JPEG opener is the one that returns MPO images).
OPEN_FORMATS = [name for name in FORMATS if name != "MPO"]

# Real formats Pillow cannot open at all, named so the error says what was sent.
_SIGNATURES = [(b"%PDF-", "pdf"), (b"<svg", "svg"), (b"8BPS", "psd")]

# What a corrupt file can make a Pillow decoder raise.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, TypeError)

ORIENTATION = 0x0112


class MediaError(ValueError):
    """Base of the decoding errors; `status` and `code` say how an API should answer."""

    status = 422
    code = "invalid_image"


class InvalidImage(MediaError):
    """Empty, corrupt, truncated or non-image data."""


class UnsupportedFormat(MediaError):
    status = 415
    code = "unsupported_media_type"


class ImageTooLarge(MediaError):
    status = 413
    code = "image_too_large"


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int  # after EXIF orientation
    height: int


@dataclass
class DecodedImage:
    image: Image.Image  # RGB, at most max_side on the long side
    format: str
    width: int  # of the original, after EXIF orientation
    height: int
    sha256: str  # of the original bytes
    bytes: int


def open_image(data: bytes, *, max_pixels: int) -> tuple[Image.Image, ImageInfo]:
    """Open lazily (header only), check format and pixel count; no pixel is decoded yet."""
    if not data:
        raise InvalidImage("empty file: 0 bytes")
    try:
        img = Image.open(io.BytesIO(data), formats=OPEN_FORMATS)
    except Image.DecompressionBombError as exc:  # Pillow's hard limit, hit in the header
        # Pillow's message names its own limit (about 179 MP), not busque's
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{found.group(1)} pixels" if found else "over Pillow's limit"
        raise ImageTooLarge(f"image is {size}, the limit is {max_pixels}") from None
    except UnidentifiedImageError:
        raise _unidentified(data) from None
    except DECODE_ERRORS as exc:
        raise InvalidImage(f"corrupt image header: {exc}") from None
    width, height = img.size
    if width <= 0 or height <= 0:
        raise InvalidImage(f"invalid image size {width}x{height}")
    if width * height > max_pixels:
        img.close()
        raise ImageTooLarge(
            f"image is {width}x{height} = {width * height} pixels, the limit is {max_pixels}"
        )
    if orientation(img, header_only=True) in (5, 6, 7, 8):
        width, height = height, width
    return img, ImageInfo(FORMATS[img.format], width, height)


def image_info(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Format and oriented size from the header, without decoding pixels."""
    img, info = open_image(data, max_pixels=max_pixels)
    img.close()
    return info


def decode_image(data: bytes, *, max_pixels: int, max_side: int | None = None) -> DecodedImage:
    img, info = open_image(data, max_pixels=max_pixels)
    rgb, width, height = decode_opened(img, info, max_side)
    if max_side and max(rgb.size) > max_side:
        scale = max_side / max(rgb.size)
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
    return DecodedImage(
        image=rgb,
        format=info.format,
        width=width,
        height=height,
        sha256=hashlib.sha256(data).hexdigest(),
        bytes=len(data),
    )


def decode_reduced(data: bytes, *, min_side: int, max_pixels: int = DEFAULT_MAX_PIXELS):
    """Upright RGB pixels for a model that resizes them itself: a JPEG decodes at the smallest
    1/2..1/8 scale whose long side stays >= min_side (other formats in full); no resampling."""
    img, info = open_image(data, max_pixels=max_pixels)
    return decode_opened(img, info, min_side)[0]


def decode_opened(
    img: Image.Image, info: ImageInfo, draft_side: int | None
) -> tuple[Image.Image, int, int]:
    """An image from open_image -> (upright RGB pixels, the original's width and height after
    EXIF orientation). A JPEG decodes at reduced scale keeping `draft_side` (None: in full). The
    orientation is read again once loaded: a PNG's eXIf chunk may follow its pixels."""
    width, height = img.size
    try:
        if draft_side:
            draft(img, draft_side)
        img.load()
        if orientation(img) in (5, 6, 7, 8):
            width, height = height, width
        return to_rgb(exif_transpose(img)), width, height
    except DECODE_ERRORS as exc:
        raise InvalidImage(f"corrupt or truncated {info.format} image: {exc}") from None


def draft(img: Image.Image, long_side: int) -> None:
    """Let libjpeg decode at the smallest 1/2..1/8 scale keeping `long_side` (no-op elsewhere)."""
    if img.format not in ("JPEG", "MPO") or long_side >= max(img.size):
        return
    scale = long_side / max(img.size)
    img.draft("RGB", (math.ceil(img.width * scale), math.ceil(img.height * scale)))


def exif_transpose(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a malformed EXIF block leaves the image as stored."""
    if orientation(img) in (2, 3, 4, 5, 6, 7, 8):
        try:
            return ImageOps.exif_transpose(img)
        except DECODE_ERRORS:
            return img
    return img


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB; transparency is composited on white."""
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I") or img.mode == "F":
        # 16/32-bit and float grey: Pillow's convert("L") clips at 255, so scale 16-bit down.
        arr = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16") or arr.max(initial=0) > 255:
            arr = arr / 257.0
        grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode in ("P", "L", "RGB") and "transparency" in img.info
    ):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def orientation(img: Image.Image, *, header_only: bool = False) -> int:
    # A PNG's eXIf chunk may follow the pixel data, and Pillow's getexif() then decodes the image.
    if header_only and img.format == "PNG" and "exif" not in img.info:
        return 1
    try:
        return int(img.getexif().get(ORIENTATION, 1))
    except DECODE_ERRORS:
        return 1


def _unidentified(data: bytes) -> MediaError:
    head = data[:1024].lstrip()
    for magic, name in _SIGNATURES:
        if head.startswith(magic) or (name == "svg" and b"<svg" in head):
            return UnsupportedFormat(f"unsupported image format: {name}")
    try:  # a format Pillow knows but we do not accept (ICO, PPM, TGA, ...): header only
        with Image.open(io.BytesIO(data)) as other:
            name = (other.format or "unknown").lower()
    except Exception:
        return InvalidImage("not a recognised image (corrupt, truncated or not an image)")
    return UnsupportedFormat(
        f"unsupported image format: {name} (accepted: {', '.join(sorted(set(FORMATS.values())))})"
    )
