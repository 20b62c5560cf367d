"""Which turn or mirror of one photo another is (from their pHashes: busque.media.phash
.TRANSFORMS), and where a box of the first lands on the second. A resolve moves a rotated
copy's named faces onto the photo it keeps: their boxes must turn with it, not only scale."""

from __future__ import annotations

from PIL import Image

from busque.media.phash import TRANSFORMS, variants_from_bytes

# Each name of TRANSFORMS as the Pillow operation its pHash stands for.
PIL_OPS = {
    "rot90": Image.Transpose.ROTATE_90,
    "rot180": Image.Transpose.ROTATE_180,
    "rot270": Image.Transpose.ROTATE_270,
    "flip": Image.Transpose.FLIP_LEFT_RIGHT,
    "flip_v": Image.Transpose.FLIP_TOP_BOTTOM,
    "transpose": Image.Transpose.TRANSPOSE,
    "transverse": Image.Transpose.TRANSVERSE,
}
SWAPS_SIDES = frozenset({"rot90", "rot270", "transpose", "transverse"})
ASPECT_SLACK = 0.1


def _bits(a: int, b: int) -> int:
    return ((a ^ b) & (2**64 - 1)).bit_count()


def turn_between(copy: dict, kept: dict) -> str | None:
    """The transform of `copy` (catalog rows) whose pHash is nearest `kept`'s, if nearer than
    the copy as it is and its sides fit the kept photo's; None: the copy is not turned."""
    if copy.get("phash_variants") is None or copy.get("phash") is None or kept.get("phash") is None:
        return None
    turns = zip(TRANSFORMS, variants_from_bytes(copy["phash_variants"]), strict=True)
    best, nearest = None, _bits(copy["phash"], kept["phash"])
    for name, code in turns:
        if (distance := _bits(code, kept["phash"])) < nearest:
            best, nearest = name, distance
    if best is None:
        return None
    width, height = copy["width"], copy["height"]
    if best in SWAPS_SIDES:
        width, height = height, width
    aspect, kept_aspect = width / max(height, 1), kept["width"] / max(kept["height"], 1)
    return best if abs(aspect - kept_aspect) <= ASPECT_SLACK * kept_aspect else None


def turned_box(
    box: tuple[int, int, int, int], size: tuple[int, int], turn: str | None
) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """A box (x, y, w, h) of an image of `size` (width, height), and that size, once the image
    is turned by `turn` (a TRANSFORMS name, as Pillow's transpose does it; None: unchanged)."""
    x, y, w, h = box
    width, height = size
    if turn is None:
        return box, size
    placed = {
        "rot90": (y, width - x - w, h, w),
        "rot180": (width - x - w, height - y - h, w, h),
        "rot270": (height - y - h, x, h, w),
        "flip": (width - x - w, y, w, h),
        "flip_v": (x, height - y - h, w, h),
        "transpose": (y, x, h, w),
        "transverse": (height - y - h, width - x - w, h, w),
    }[turn]
    return placed, ((height, width) if turn in SWAPS_SIDES else size)
