"""Whether two photos are one picture: one a crop, turn, mirror, border, caption bar, watermark,
greyscale copy or re-save of the other, and not a second shot of the same scene.

A pHash or an embedding describes the whole photo, so two shots of one scene a step apart (a
stereo pair, a burst) are as close as an edit is to its original (bench/duplicates.py). What
tells them apart is geometry: an edit keeps every point where one similarity transform (scale,
turn, shift) puts it; a second viewpoint moves near and far things by different amounts. So:
ORB keypoints of both (and of the first mirrored), matched, a similarity fitted with RANSAC, the
first warped onto the second, and the normalised correlation of each aligned 32-pixel tile
that has texture in both. The agreement is their lower quartile (three tiles in four agree at
least this well): about 1 for an edit, whose caption, border or watermark spoils a few tiles
only; much lower where the parallax moves near and far things apart (bench/duplicates.py:
the quartile separates them where the median does not).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

cv2.setNumThreads(1)  # one pair per thread; callers run them where they like

SIDE = 512  # the long side compared, px
TILE = 32
MIN_KEYPOINTS = 100  # fewer (a blurred or flat photo): too little to tell, no verdict
# Two photos this textured that no similarity aligns are not one picture (unrelated photos
# that a loose embedding threshold paired); below it a failed alignment proves nothing.
TEXTURED = 200
MIN_INLIERS = 10
MIN_TILES = 8
RATIO_TEST = 0.8
MAX_SCALE = 8.0  # a fit that shrinks or grows more than this is not an edit
METHOD = f"orb-similarity-q25ncc{TILE}@{SIDE}"  # what a stored verdict was computed by

_orb = cv2.ORB_create(nfeatures=1000)
_matcher = cv2.BFMatcher(cv2.NORM_HAMMING)


@dataclass(frozen=True)
class View:
    grey: np.ndarray  # uint8, long side <= SIDE
    points: np.ndarray  # float32 (n, 2)
    descriptors: np.ndarray | None


@dataclass(frozen=True)
class Picture:
    upright: View
    mirrored: View

    @property
    def too_plain(self) -> bool:
        return len(self.upright.points) < MIN_KEYPOINTS


def picture(image: bytes | Image.Image) -> Picture:
    """A photo (bytes of any format Pillow reads, or an image) ready to compare."""
    if isinstance(image, bytes):
        image = Image.open(io.BytesIO(image))
        image.draft("L", (SIDE, SIDE))  # JPEG: decoded at 1/2..1/8 scale, much faster
    grey = image.convert("L")
    grey.thumbnail((SIDE, SIDE))
    pixels = np.ascontiguousarray(np.asarray(grey))
    return Picture(_view(pixels), _view(np.ascontiguousarray(pixels[:, ::-1])))


def _view(grey: np.ndarray) -> View:
    keypoints, descriptors = _orb.detectAndCompute(grey, None)
    points = np.float32([k.pt for k in keypoints]).reshape(-1, 2)
    return View(grey, points, descriptors)


def agreement(a: Picture, b: Picture) -> float | None:
    """How well `a` (as it is, or mirrored), aligned onto `b`, agrees with it: the lower
    quartile of their aligned tiles' correlations, up to 1; 0 when two textured photos do not
    align at all. None when there is too little texture to tell: no evidence either way, the
    pair stands or falls by its pHash and embedding."""
    if a.too_plain or b.too_plain:
        return None
    found = [_aligned(view, b.upright) for view in (a.upright, a.mirrored)]
    judged = [f for f in found if f is not None]
    if judged:
        return max(judged)
    textured = min(len(a.upright.points), len(b.upright.points)) >= TEXTURED
    return 0.0 if textured else None


def _aligned(a: View, b: View) -> float | None:
    if a.descriptors is None or b.descriptors is None:
        return None
    matches = _matcher.knnMatch(a.descriptors, b.descriptors, k=2)
    good = [m[0] for m in matches if len(m) == 2 and m[0].distance < RATIO_TEST * m[1].distance]
    if len(good) < MIN_INLIERS:
        return None
    source = a.points[[m.queryIdx for m in good]]
    target = b.points[[m.trainIdx for m in good]]
    cv2.setRNGSeed(0)  # RANSAC's samples: the same verdict for the same pair, every time
    transform, inliers = cv2.estimateAffinePartial2D(
        source,
        target,
        method=cv2.RANSAC,
        ransacReprojThreshold=0.006 * max(b.grey.shape),
        maxIters=2000,
        confidence=0.999,
    )
    if transform is None or int(inliers.sum()) < MIN_INLIERS:
        return None
    scale = float(np.hypot(transform[0, 0], transform[0, 1]))
    if not 1 / MAX_SCALE <= scale <= MAX_SCALE:
        return None
    return _tile_agreement(a.grey, b.grey, transform, shrinking=scale < 1)


def _tile_agreement(
    a: np.ndarray, b: np.ndarray, transform: np.ndarray, shrinking: bool
) -> float | None:
    height, width = b.shape
    resample = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    warped = cv2.warpAffine(a, transform, (width, height), flags=resample)
    covered = cv2.warpAffine(
        np.ones_like(a), transform, (width, height), flags=cv2.INTER_NEAREST
    ).astype(bool)
    # A little blur: a low-quality re-save or a resampling moves pixels, not structure.
    warped = cv2.GaussianBlur(warped.astype(np.float32), (0, 0), 1.5)
    target = cv2.GaussianBlur(b.astype(np.float32), (0, 0), 1.5)
    rows, cols = height // TILE, width // TILE
    if not rows or not cols:
        return None

    def tiles(x: np.ndarray) -> np.ndarray:
        return x[: rows * TILE, : cols * TILE].reshape(rows, TILE, cols, TILE).swapaxes(1, 2)

    inside = tiles(covered).all(axis=(2, 3))
    x, y = tiles(warped)[inside], tiles(target)[inside]  # (n, TILE, TILE)
    x = x - x.mean(axis=(1, 2), keepdims=True)
    y = y - y.mean(axis=(1, 2), keepdims=True)
    sx, sy = x.std(axis=(1, 2)), y.std(axis=(1, 2))
    textured = (sx >= 4) & (sy >= 4)  # flat tiles (sky, a border) say nothing either way
    if textured.sum() < MIN_TILES:
        return None
    correlation = (x * y).mean(axis=(1, 2))[textured] / (sx * sy)[textured]
    return round(float(np.percentile(correlation, 25)), 4)
