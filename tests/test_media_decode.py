"""busque.media.decode on real photos (scikit-image ships them) in every accepted format, and on
bad input: bombs, truncated and non-image data, real but unsupported formats."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from busque.media.decode import (
    FORMATS,
    ImageTooLarge,
    InvalidImage,
    MediaError,
    UnsupportedFormat,
    decode_image,
    image_info,
)

MAX_PIXELS = 50_000_000


def encode(img: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(skdata.astronaut())  # 512x512 RGB


@pytest.fixture(scope="module")
def chelsea() -> Image.Image:
    return Image.fromarray(skdata.chelsea())  # 451x300 RGB


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit greyscale PNG of all-zero rows: a few KB that would decode to width*height."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row * 1000) for _ in range(height // 1000)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "fmt, name",
    [
        ("JPEG", "jpeg"),
        ("PNG", "png"),
        ("WEBP", "webp"),
        ("GIF", "gif"),
        ("BMP", "bmp"),
        ("TIFF", "tiff"),
        pytest.param(
            "HEIF",
            "heic",
            marks=pytest.mark.skipif("HEIF" not in FORMATS, reason="pillow-heif not installed"),
        ),
    ],
)
def test_each_format_decodes_to_rgb(astronaut, fmt, name):
    data = encode(astronaut, fmt)
    out = decode_image(data, max_pixels=MAX_PIXELS)
    assert (out.format, out.width, out.height) == (name, 512, 512)
    assert out.image.mode == "RGB" and out.image.size == (512, 512)
    assert out.sha256 == hashlib.sha256(data).hexdigest()
    assert out.bytes == len(data)
    # Lossy or palette, the pixels are still the photo's.
    diff = np.abs(np.asarray(out.image, np.int16) - np.asarray(astronaut, np.int16)).mean()
    assert diff < 20
    assert image_info(data).format == name


def test_gif_first_frame(astronaut, chelsea):
    frames = [astronaut.resize((200, 200)), chelsea.resize((200, 200))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    out = decode_image(data, max_pixels=MAX_PIXELS)
    first = np.asarray(frames[0], np.int16)
    assert np.abs(np.asarray(out.image, np.int16) - first).mean() < 20


def test_exif_orientation_6_is_applied(chelsea):
    marked = chelsea.copy()
    marked.paste((255, 0, 0), (0, 0, 40, 40))  # red block top-left as stored
    exif = marked.getexif()
    exif[0x0112] = 6  # display = stored rotated 90 degrees clockwise
    data = encode(marked, "JPEG", quality=95, exif=exif)

    info = image_info(data)
    out = decode_image(data, max_pixels=MAX_PIXELS)
    assert (info.width, info.height) == (300, 451)
    assert (out.width, out.height) == (300, 451) and out.image.size == (300, 451)
    # The stored top-left corner is now top-right.
    r, g, b = out.image.getpixel((300 - 20, 20))
    assert r > 200 and g < 60 and b < 60


def test_max_side_downscales_but_reports_original_size(chelsea):
    big = chelsea.resize((1353, 900))
    for fmt in ("JPEG", "PNG"):  # JPEG goes through libjpeg's draft scaling
        out = decode_image(encode(big, fmt), max_pixels=MAX_PIXELS, max_side=256)
        assert out.image.size == (256, 170)
        assert (out.width, out.height) == (1353, 900)
    small = decode_image(encode(chelsea, "PNG"), max_pixels=MAX_PIXELS, max_side=1024)
    assert small.image.size == (451, 300)


def test_transparency_is_composited_on_white():
    rgba = Image.new("RGBA", (64, 64), (255, 0, 0, 0))  # fully transparent red
    rgba.paste((0, 0, 255, 255), (0, 0, 32, 64))
    out = decode_image(encode(rgba, "PNG"), max_pixels=MAX_PIXELS).image
    assert out.getpixel((48, 10)) == (255, 255, 255)
    assert out.getpixel((10, 10)) == (0, 0, 255)

    la = Image.new("LA", (16, 16), (0, 0))
    assert decode_image(encode(la, "PNG"), max_pixels=MAX_PIXELS).image.getpixel((1, 1)) == (
        255,
        255,
        255,
    )

    pal = Image.new("P", (16, 16), 0)
    pal.putpalette([0, 0, 0, 10, 200, 10] + [0] * 762)
    pal.paste(1, (0, 0, 8, 16))
    out = decode_image(encode(pal, "PNG", transparency=0), max_pixels=MAX_PIXELS).image
    assert out.getpixel((2, 2)) == (10, 200, 10)
    assert out.getpixel((12, 2)) == (255, 255, 255)


def test_cmyk_palette_and_16_bit_become_rgb(astronaut):
    for data in (
        encode(astronaut.convert("CMYK"), "JPEG"),
        encode(astronaut.convert("CMYK"), "TIFF"),
        encode(astronaut.convert("P"), "PNG"),
        encode(astronaut.convert("L"), "BMP"),
        encode(astronaut.convert("1"), "PNG"),
    ):
        out = decode_image(data, max_pixels=MAX_PIXELS)
        assert out.image.mode == "RGB" and out.image.size == (512, 512)

    grey16 = (np.asarray(astronaut.convert("L"), np.uint16) * 257).astype(np.uint16)
    img16 = Image.fromarray(grey16)
    assert img16.mode == "I;16"
    for fmt in ("PNG", "TIFF"):
        out = decode_image(encode(img16, fmt), max_pixels=MAX_PIXELS).image
        assert out.mode == "RGB"
        # Scaled to 8 bits, not clipped at 255 (which would make the photo nearly all white).
        got = np.asarray(out)[:, :, 0].astype(np.int16)
        want = np.asarray(astronaut.convert("L"), np.int16)
        assert np.abs(got - want).max() <= 1


def test_png_bomb_is_refused_from_the_header():
    bomb = png_bomb(20000, 20000)
    assert len(bomb) < 200_000
    start = time.perf_counter()
    with pytest.raises(ImageTooLarge) as err:
        decode_image(bomb, max_pixels=MAX_PIXELS)
    assert time.perf_counter() - start < 1.0
    assert err.value.status == 413 and isinstance(err.value, ValueError)


def test_our_pixel_limit_applies_below_pillows():
    bomb = png_bomb(8000, 8000)  # 64 MP: under Pillow's limits, over ours
    start = time.perf_counter()
    with pytest.raises(ImageTooLarge, match="8000x8000"):
        decode_image(bomb, max_pixels=MAX_PIXELS)
    with pytest.raises(ImageTooLarge):
        image_info(bomb, max_pixels=MAX_PIXELS)
    # The header alone is read: no pixels decoded even when allowed.
    info = image_info(bomb, max_pixels=10**8)
    assert (info.format, info.width, info.height) == ("png", 8000, 8000)
    assert time.perf_counter() - start < 1.0


def test_corrupt_and_non_image_data_are_invalid(astronaut):
    jpeg = encode(astronaut, "JPEG")
    cases = {
        "truncated jpeg": jpeg[: len(jpeg) // 2],
        "empty": b"",
        "random": os.urandom(4096),
        "text": b"hello, this is not an image\n" * 20,
        "jpeg header only": jpeg[:200],
        "truncated png": encode(astronaut, "PNG")[:3000],
    }
    for name, data in cases.items():
        with pytest.raises(InvalidImage) as err:
            decode_image(data, max_pixels=MAX_PIXELS)
        assert err.value.code == "invalid_image" and err.value.status == 422, name
        assert isinstance(err.value, ValueError)


def test_real_but_unsupported_formats(astronaut):
    """Formats we recognise but do not accept answer UnsupportedFormat (415), not InvalidImage."""
    small = astronaut.resize((32, 32))
    cases = {
        "ico": encode(small, "ICO"),
        "pdf": encode(small, "PDF"),
        "svg": b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="4"/>',
        "ppm": encode(small, "PPM"),
    }
    for name, data in cases.items():
        with pytest.raises(UnsupportedFormat, match=name) as err:
            decode_image(data, max_pixels=MAX_PIXELS)
        assert err.value.status == 415 and isinstance(err.value, MediaError)
