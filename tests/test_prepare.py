"""busque.media.normalize.prepare: the renditions from an original's bytes, with the least work
(an upright RGB JPEG within the cap is its own normalised rendition; JPEGs decode at reduced
scale), on real photos and on bad input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from busque.media.decode import InvalidImage, decode_image, decode_reduced
from busque.media.normalize import prepare

MAX_PIXELS = 50_000_000


def jpeg(img: Image.Image, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, **params)
    return buf.getvalue()


def opened(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


@pytest.fixture(scope="module")
def chelsea() -> Image.Image:
    return Image.fromarray(skdata.chelsea())  # 451x300


def test_an_upright_rgb_jpeg_within_the_cap_is_its_own_normalised_rendition(chelsea):
    photo = chelsea.resize((1152, 864))
    data = jpeg(photo)
    decoded, made = prepare(data, max_pixels=MAX_PIXELS, analysis_side=512)
    assert made.normalized == data  # no re-encode
    # decoded at 1/2 scale: enough for the models, a quarter of the pixels
    assert decoded.image.size == (576, 432) and decoded.image.mode == "RGB"
    assert (decoded.width, decoded.height, decoded.format) == (1152, 864, "jpeg")
    thumb = opened(made.thumbnail)
    assert thumb.format == "WEBP" and thumb.size == (256, 192)
    # the pixels agree with a full decode, shrunk the same way
    full = decode_image(data, max_pixels=MAX_PIXELS).image.resize((576, 432), Image.BOX)
    diff = np.abs(np.asarray(full, np.int16) - np.asarray(decoded.image, np.int16))
    assert diff.mean() < 3


def test_without_an_analysis_side_only_the_thumbnail_is_decoded(chelsea):
    data = jpeg(chelsea.resize((2000, 1500)))
    decoded, made = prepare(data, max_pixels=MAX_PIXELS, thumb_side=256)
    assert made.normalized == data
    assert decoded.image.size == (500, 375)  # 1/4 scale: the smallest above 256 px
    assert max(opened(made.thumbnail).size) == 256


def test_a_12mp_jpeg_decodes_at_half_scale_into_a_normalised_jpeg_under_the_cap(chelsea):
    data = jpeg(chelsea.resize((4000, 3000)))
    decoded, made = prepare(data, max_pixels=MAX_PIXELS, max_side=2048)
    normalized = opened(made.normalized)
    assert normalized.format == "JPEG" and normalized.size == (2000, 1500)
    assert decoded.image.size == (2000, 1500) and (decoded.width, decoded.height) == (4000, 3000)


def test_a_larger_jpeg_decodes_at_reduced_scale_and_is_resampled_to_the_cap(chelsea):
    data = jpeg(chelsea.resize((6000, 4000)))
    _, made = prepare(data, max_pixels=MAX_PIXELS, max_side=2048)
    assert opened(made.normalized).size == (2048, 1365)


def test_a_png_is_re_encoded_as_a_jpeg_at_the_cap(chelsea):
    buf = io.BytesIO()
    chelsea.resize((3000, 2000)).save(buf, "PNG")
    decoded, made = prepare(buf.getvalue(), max_pixels=MAX_PIXELS, max_side=1024, thumb_side=128)
    normalized, thumb = opened(made.normalized), opened(made.thumbnail)
    assert normalized.format == "JPEG" and normalized.size == (1024, 683)
    assert thumb.format == "WEBP" and max(thumb.size) == 128
    assert decoded.format == "png"


def test_an_exif_rotated_jpeg_is_re_encoded_upright(chelsea):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = jpeg(chelsea, exif=exif.tobytes())
    decoded, made = prepare(data, max_pixels=MAX_PIXELS)
    assert made.normalized != data
    assert opened(made.normalized).size == (300, 451)
    assert (decoded.width, decoded.height) == (300, 451)


def test_greyscale_and_cmyk_jpegs_are_re_encoded_as_rgb(chelsea):
    for mode in ("L", "CMYK"):
        data = jpeg(chelsea.convert(mode))
        _, made = prepare(data, max_pixels=MAX_PIXELS)
        assert made.normalized != data
        assert opened(made.normalized).mode == "RGB"


def test_a_truncated_jpeg_is_refused_even_when_nothing_needs_re_encoding(chelsea):
    data = jpeg(chelsea.resize((1152, 864)))
    with pytest.raises(InvalidImage, match="corrupt or truncated"):
        prepare(data[: len(data) // 2], max_pixels=MAX_PIXELS, analysis_side=512)


def test_decode_reduced_keeps_the_long_side_a_model_needs(chelsea):
    big = jpeg(chelsea.resize((4000, 3000)))
    assert decode_reduced(big, min_side=512).size == (1000, 750)  # 1/4: 1/8 would be 500
    assert decode_reduced(big, min_side=5000).size == (4000, 3000)
    buf = io.BytesIO()
    chelsea.save(buf, "PNG")
    image = decode_reduced(buf.getvalue(), min_side=64)
    assert image.size == (451, 300) and image.mode == "RGB"  # only JPEGs decode reduced
    with pytest.raises(InvalidImage):
        decode_reduced(big[:1000], min_side=512)
