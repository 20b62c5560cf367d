"""Real face photos that ship in packages: scikit-image's astronaut (Eileen Collins) and
matplotlib's grace_hopper.jpg; transformed copies and composites of them, as encoded bytes."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageEnhance, ImageOps


def astronaut() -> Image.Image:
    import skimage.data

    return Image.fromarray(skimage.data.astronaut())


def grace_hopper() -> Image.Image:
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return Image.open(path).convert("RGB")


def encode(image: Image.Image, fmt: str = "JPEG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def variants(image: Image.Image) -> list[bytes]:
    """Three different files of the same face: resized, recompressed, brightened."""
    smaller = image.resize((image.width * 3 // 4, image.height * 3 // 4))
    return [
        encode(smaller, quality=85),
        encode(image, quality=35),
        encode(ImageEnhance.Brightness(image).enhance(1.15), quality=90),
    ]


def mirrored(image: Image.Image) -> bytes:
    return encode(ImageOps.mirror(image), quality=90)


def side_by_side(*images: Image.Image) -> Image.Image:
    height = max(i.height for i in images)
    canvas = Image.new("RGB", (sum(i.width for i in images), height), (128, 128, 128))
    x = 0
    for image in images:
        canvas.paste(image, (x, 0))
        x += image.width
    return canvas


def no_face() -> bytes:
    import skimage.data

    return encode(Image.fromarray(skimage.data.coffee()), quality=90)


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    return inter / (aw * ah + bw * bh - inter)
