"""busque.media.phash against imagehash.phash on real photos and transformed copies of them."""

from __future__ import annotations

import io
import itertools

import imagehash
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageOps
from skimage import data as skdata

from busque.media import phash as phash_module
from busque.media.decode import ImageTooLarge, InvalidImage
from busque.media.phash import (
    bytes_to_hex,
    hamming,
    hex_to_bytes,
    hex_to_int64,
    int64_to_hex,
    phash_and_variants,
    phash_bytes,
    phash_image,
    phash_many,
    variants_from_bytes,
)
from busque.media.turned_boxes import PIL_OPS

PHOTOS = [
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "camera",
    "horse",
    "hubble_deep_field",
    "immunohistochemistry",
    "coins",
    "clock",
]


def photo(name: str) -> Image.Image:
    arr = getattr(skdata, name)()
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    return Image.fromarray(arr).convert("RGB")


def jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def watermark(img: Image.Image) -> Image.Image:
    out = img.copy()
    ImageDraw.Draw(out).text((10, img.height - 30), "(c) busque 2026", fill=(255, 255, 255))
    return out


def crop10(img: Image.Image) -> Image.Image:
    dx, dy = img.width // 20, img.height // 20
    return img.crop((dx, dy, img.width - dx, img.height - dy))


TRANSFORMS = {
    "original": lambda im: jpeg(im),
    "resize": lambda im: jpeg(im.resize((im.width // 2, im.height // 2), Image.Resampling.BICUBIC)),
    "upscale": lambda im: jpeg(im.resize((im.width * 5 // 2, im.height * 5 // 2))),
    "crop": lambda im: jpeg(crop10(im)),
    "jpeg30": lambda im: jpeg(im, quality=30),
    "brightness": lambda im: jpeg(ImageEnhance.Brightness(im).enhance(1.3)),
    "rotate": lambda im: jpeg(im.rotate(3, resample=Image.Resampling.BICUBIC)),
    "mirror": lambda im: jpeg(ImageOps.mirror(im)),
    "watermark": lambda im: jpeg(watermark(im)),
}


@pytest.fixture(scope="module")
def dataset() -> dict[tuple[str, str], bytes]:
    """(photo, transform) -> JPEG bytes: 10 photos x 9 = 90 images."""
    out = {}
    for name in PHOTOS:
        img = photo(name)
        for tname, transform in TRANSFORMS.items():
            out[name, tname] = transform(img)
    return out


def reference(data: bytes) -> str:
    return str(imagehash.phash(Image.open(io.BytesIO(data))))


def test_exact_mode_matches_imagehash_bit_for_bit(dataset):
    for key, data in dataset.items():
        assert phash_bytes(data, mode="exact") == reference(data), key


def test_phash_image_matches_imagehash_on_any_mode():
    for name in PHOTOS[:4]:
        img = photo(name)
        for variant in (img, img.convert("L"), img.convert("RGBA"), img.convert("P"), crop10(img)):
            assert phash_image(variant) == str(imagehash.phash(variant)), (name, variant.mode)
    # Other formats through bytes.
    img = photo("coffee")
    for fmt in ("PNG", "WEBP", "BMP", "TIFF", "GIF"):
        buf = io.BytesIO()
        img.save(buf, fmt)
        assert phash_bytes(buf.getvalue(), mode="exact") == reference(buf.getvalue()), fmt


def test_fast_mode_agrees_with_imagehash(dataset):
    distances = {key: hamming(phash_bytes(data), reference(data)) for key, data in dataset.items()}
    within = sum(d <= 4 for d in distances.values()) / len(distances)
    assert len(distances) >= 40
    assert within >= 0.99, sorted(distances.items(), key=lambda kv: -kv[1])[:5]


def test_near_duplicates_are_close_and_different_photos_far(dataset):
    for name in PHOTOS:
        original = phash_bytes(dataset[name, "original"])
        for tname in ("resize", "upscale", "jpeg30", "brightness", "watermark"):
            assert hamming(original, phash_bytes(dataset[name, tname])) <= 6, (name, tname)
    for a, b in itertools.combinations(PHOTOS, 2):
        assert (
            hamming(phash_bytes(dataset[a, "original"]), phash_bytes(dataset[b, "original"])) > 10
        )


def test_phash_many_equals_one_by_one(dataset):
    items = list(dataset.values())[:25]
    assert phash_many(items) == [phash_bytes(d) for d in items]
    assert phash_many(items[:5], mode="exact") == [reference(d) for d in items[:5]]
    assert phash_many([]) == []


def test_fast_mode_hashes_the_oriented_image():
    img = photo("chelsea")
    exif = img.getexif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95, exif=exif)
    shown = img.transpose(Image.Transpose.ROTATE_270)
    want = phash_image(shown)
    assert hamming(phash_bytes(buf.getvalue()), want) <= 4
    assert phash_bytes(buf.getvalue(), mode="exact") == phash_image(
        ImageOps.exif_transpose(Image.open(buf))
    )
    assert hamming(phash_bytes(buf.getvalue()), phash_image(img)) > 10


def test_conversions_round_trip():
    for h in ("0000000000000000", "ffffffffffffffff", "8000000000000000", "d1c4a1b2f0e3c5a7"):
        value = hex_to_int64(h)
        assert -(2**63) <= value < 2**63
        assert int64_to_hex(value) == h
        assert len(hex_to_bytes(h)) == 8 and bytes_to_hex(hex_to_bytes(h)) == h
    assert hex_to_int64("ffffffffffffffff") == -1
    assert hex_to_int64("7fffffffffffffff") == 2**63 - 1
    # Same bit order as imagehash: the first hash bit is the most significant.
    bits = imagehash.hex_to_hash("8000000000000000").hash.ravel()
    assert bits[0] and bits.sum() == 1


def test_hamming():
    assert hamming("0000000000000000", "ffffffffffffffff") == 64
    assert hamming("d1c4a1b2f0e3c5a7", "d1c4a1b2f0e3c5a7") == 0
    assert hamming("0000000000000001", "0000000000000003") == 1
    a, b = "d1c4a1b2f0e3c5a7", "91c4a1b2f0e3c5a6"
    assert hamming(a, b) == imagehash.hex_to_hash(a) - imagehash.hex_to_hash(b)


def test_bad_input():
    with pytest.raises(InvalidImage):
        phash_bytes(b"")
    with pytest.raises(InvalidImage):
        phash_bytes(jpeg(photo("coffee"))[:4000])
    with pytest.raises(InvalidImage):
        phash_many([jpeg(photo("coffee")), b"not an image"])
    big = jpeg(Image.new("RGB", (4000, 3000)))
    with pytest.raises(ImageTooLarge):
        phash_bytes(big, max_pixels=1_000_000)
    with pytest.raises(ValueError, match="mode"):
        phash_bytes(big, mode="quick")


TURNS = PIL_OPS  # each transform's name as the Pillow operation


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee", "rocket"])
def test_the_variants_are_the_hashes_of_the_turned_and_mirrored_photo(name):
    """Each variant code, derived from the one DCT block, is the pHash of the transformed
    photo (a turned or mirrored JPEG, decoded again) within 2 bits, while the photo's own
    pHash is far from most of them."""
    photo = Image.fromarray(getattr(skdata, name)()).convert("RGB")
    data = jpeg_bytes(photo)
    own, variants = phash_and_variants(data)
    assert own == phash_bytes(data) and len(variants) == 56
    codes = dict(zip(phash_module.TRANSFORMS, variants_from_bytes(variants), strict=True))
    assert list(codes) == list(TURNS)
    far = 0
    for transform, turn in TURNS.items():
        turned = phash_bytes(jpeg_bytes(photo.transpose(turn)))
        assert hamming(int64_to_hex(codes[transform]), turned) <= 2, transform
        far += hamming(own, turned) > 12
    assert far >= 5  # without the variants, most turns would not be found


def jpeg_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92)
    return out.getvalue()
