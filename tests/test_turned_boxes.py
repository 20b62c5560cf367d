"""A box turns with its photo exactly as Pillow turns the pixels, and the turn between a copy
and its original is read from their real pHashes (busque.media.turned_boxes)."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageDraw

from busque.media.phash import TRANSFORMS, hex_to_int64, phash_and_variants
from busque.media.turned_boxes import PIL_OPS, turn_between, turned_box
from tests.face_photos import encode


@pytest.mark.parametrize("turn", list(TRANSFORMS))
def test_a_box_lands_where_pillow_puts_its_pixels(turn):
    image = Image.new("L", (120, 80))
    box = (10, 20, 30, 15)
    x, y, w, h = box
    ImageDraw.Draw(image).rectangle((x, y, x + w - 1, y + h - 1), fill=255)
    turned = image.transpose(PIL_OPS[turn])
    placed, size = turned_box(box, image.size, turn)
    left, top, right, bottom = turned.getbbox()
    assert placed == (left, top, right - left, bottom - top)
    assert size == turned.size


def row(image: Image.Image) -> dict:
    data = encode(image, quality=92)
    phash, variants = phash_and_variants(data)
    return {
        "phash": hex_to_int64(phash),
        "phash_variants": variants,
        "width": image.width,
        "height": image.height,
    }


@pytest.mark.parametrize("turn", ["rot90", "rot180", "flip", "transpose"])
def test_the_turn_between_a_copy_and_its_original_puts_its_boxes_back(turn):
    import skimage.data

    original = Image.fromarray(skimage.data.astronaut()).crop((0, 0, 512, 380))
    copy = original.transpose(PIL_OPS[turn])
    back = turn_between(row(copy), row(original))
    assert back is not None
    face = (170, 40, 110, 130)  # (x, y, w, h) on the original
    on_copy, copy_size = turned_box(face, original.size, turn)
    assert copy_size == copy.size
    assert turned_box(on_copy, copy.size, back) == (face, original.size)


def test_a_copy_that_is_not_turned_stays_as_it_is():
    import skimage.data

    original = Image.fromarray(skimage.data.astronaut())
    smaller = Image.open(io.BytesIO(encode(original.resize((256, 256)), quality=60)))
    assert turn_between(row(smaller), row(original)) is None
    assert turn_between({**row(smaller), "phash_variants": None}, row(original)) is None
