"""Face analysis with dlib: HOG (or MMOD CNN) detection, 5-point alignment, ResNet embeddings.

Weights: the `.dat` files of the `face_recognition_models` wheel (MIT), located with importlib
without importing the package (its __init__ imports pkg_resources). The `face_recognition`
wrapper is not used either: it can call quit() when the models are missing.

Speed comes from where each step runs, not from a faster model:

- Large JPEGs are decoded at 1/2, 1/4 or 1/8 scale by libjpeg (draft mode), to the smallest
  such size still at least `detect_side` long: a 12 MP photo decodes to 2000x1500 in a third of
  the time of a full decode, and with no resampling pass.
- Detection runs on a copy at most `detect_side` long with no upsampling (the HOG window is
  80x80, so faces down to about 5% of the long side are found); `face_recognition` instead
  runs HOG on the full image upsampled 2x: for a 12 MP photo, 25x the pixels of 1600x1200.
- Landmarks and aligned chips are cut from the decoded working image, which is at least as
  sharp as the detection copy.
- The 150 px chip (padding 0.25) is exactly what `compute_face_descriptor(img, shape)` extracts
  itself, so embedding the chip gives the same vector, and all chips of a batch go to the
  network in one call.

Boxes and landmarks are reported in the upright original image's pixels.
"""

from __future__ import annotations

import importlib.util
import io
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from busque.media.decode import DEFAULT_MAX_PIXELS, decode_image, image_info, to_rgb
from busque.models.faces.base import DetectedFace, FaceAnalyzer

WEIGHTS_PACKAGE = "face_recognition_models"
SHAPE_PREDICTOR = "shape_predictor_5_face_landmarks.dat"
RECOGNITION_NET = "dlib_face_recognition_resnet_model_v1.dat"
CNN_DETECTOR = "mmod_human_face_detector.dat"
WEIGHT_FILES = (SHAPE_PREDICTOR, RECOGNITION_NET, CNN_DETECTOR)
NET_CHIP_SIZE = 150  # the recognition network's input; padding 0.25 is what it was trained on
CHIP_PADDING = 0.25

Box = tuple[int, int, int, int]


def weights_dir() -> Path:
    """The folder holding dlib's `.dat` files; FileNotFoundError says what is missing."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise FileNotFoundError(
            f"the {WEIGHTS_PACKAGE} package is not installed: "
            "pip install face_recognition_models==0.3.0"
        )
    for location in locations:
        folder = Path(location) / "models"
        missing = [f for f in WEIGHT_FILES if not (folder / f).is_file()]
        if not missing:
            return folder
    raise FileNotFoundError(f"{', '.join(missing)} missing from the {WEIGHTS_PACKAGE} package")


def unavailable_reason() -> str | None:
    """None when dlib and its weights are installed, else why not."""
    if importlib.util.find_spec("dlib") is None:
        return "the dlib package is not installed: pip install dlib-bin"
    try:
        weights_dir()
    except FileNotFoundError as exc:
        return str(exc)
    return None


def _clip(left: int, top: int, right: int, bottom: int, width: int, height: int) -> Box | None:
    """dlib rectangle corners (inclusive) -> (x, y, w, h) inside the image, None if outside."""
    left, top = max(0, left), max(0, top)
    right, bottom = min(width - 1, right), min(height - 1, bottom)
    if right < left or bottom < top:
        return None
    return left, top, right - left + 1, bottom - top + 1


class DlibHogDetector:
    """dlib's frontal-face HOG + linear SVM; the score is the SVM margin."""

    name = "hog"

    def __init__(self, upsample: int = 0, min_score: float = 0.0):
        import dlib

        self.upsample = upsample
        self.min_score = min_score
        self._detector = dlib.get_frontal_face_detector()

    def detect(self, rgb: np.ndarray) -> list[tuple[Box, float]]:
        height, width = rgb.shape[:2]
        rects, scores, _ = self._detector.run(rgb, self.upsample, 0.0)
        found = []
        for rect, score in zip(rects, scores, strict=True):
            box = _clip(rect.left(), rect.top(), rect.right(), rect.bottom(), width, height)
            if box and score >= self.min_score:
                found.append((box, float(score)))
        return found


class DlibCnnDetector:
    """dlib's MMOD CNN detector: finds turned and tilted faces HOG misses, ~60x slower on CPU."""

    name = "cnn"

    def __init__(self, upsample: int = 0, min_score: float = 0.0):
        import dlib

        self.upsample = upsample
        self.min_score = min_score
        self._detector = dlib.cnn_face_detection_model_v1(str(weights_dir() / CNN_DETECTOR))

    def detect(self, rgb: np.ndarray) -> list[tuple[Box, float]]:
        height, width = rgb.shape[:2]
        found = []
        for det in self._detector(rgb, self.upsample):
            r = det.rect
            box = _clip(r.left(), r.top(), r.right(), r.bottom(), width, height)
            if box and det.confidence >= self.min_score:
                found.append((box, float(det.confidence)))
        return found


class DlibEncoder:
    """5-point landmarks, aligned chips and 128-d ResNet embeddings (L2 < 0.6: same person)."""

    name = "dlib-resnet-v1"
    dim = 128

    def __init__(self):
        import dlib

        folder = weights_dir()
        self._dlib = dlib
        self._predictor = dlib.shape_predictor(str(folder / SHAPE_PREDICTOR))
        self._net = dlib.face_recognition_model_v1(str(folder / RECOGNITION_NET))

    def align(
        self, rgb: np.ndarray, boxes: Sequence[Box], chip_size: int
    ) -> tuple[list[list[tuple[int, int]]], list[np.ndarray], list[np.ndarray]]:
        """-> (landmarks, chips of chip_size, the network's 150 px chips), in `rgb`'s pixels."""
        landmarks, chips, net_chips = [], [], []
        for x, y, w, h in boxes:
            shape = self._predictor(rgb, self._dlib.rectangle(x, y, x + w - 1, y + h - 1))
            landmarks.append([(p.x, p.y) for p in shape.parts()])
            chip = self._dlib.get_face_chip(rgb, shape, size=chip_size, padding=CHIP_PADDING)
            chips.append(chip)
            if chip_size != NET_CHIP_SIZE:
                chip = self._dlib.get_face_chip(
                    rgb, shape, size=NET_CHIP_SIZE, padding=CHIP_PADDING
                )
            net_chips.append(chip)
        return landmarks, chips, net_chips

    def embed(self, net_chips: Sequence[np.ndarray]) -> np.ndarray:
        """150 px aligned chips -> (n, 128) float32, in one call to the network."""
        if not net_chips:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._net.compute_face_descriptor(list(net_chips))
        return np.array([np.asarray(v) for v in vectors], dtype=np.float32)

    def encode(
        self, rgb: np.ndarray, boxes: Sequence[Box], chip_size: int
    ) -> tuple[list[list[tuple[int, int]]], list[np.ndarray], np.ndarray]:
        landmarks, chips, net_chips = self.align(rgb, boxes, chip_size)
        return landmarks, chips, self.embed(net_chips)


DETECTORS = {"hog": DlibHogDetector, "cnn": DlibCnnDetector}


class DlibFaceAnalyzer(FaceAnalyzer):
    """Options: detector ("hog" | "cnn"), detect_side, upsample, min_score, thumbnail_size,
    max_pixels (decoding limit), jpeg_quality (thumbnails). See the module docstring."""

    model_id = "dlib-resnet-v1"
    dim = 128

    def __init__(
        self,
        *,
        detector: str = "hog",
        detect_side: int = 1600,
        upsample: int = 0,
        min_score: float = 0.0,
        thumbnail_size: int = 150,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        jpeg_quality: int = 90,
    ):
        if detector not in DETECTORS:
            raise ValueError(f"unknown face detector {detector!r}: {sorted(DETECTORS)}")
        super().__init__(
            detector=detector,
            detect_side=detect_side,
            upsample=upsample,
            min_score=min_score,
            thumbnail_size=thumbnail_size,
            max_pixels=max_pixels,
            jpeg_quality=jpeg_quality,
        )
        self.detector_name = detector
        self.detect_side = detect_side
        self.upsample = upsample
        self.min_score = min_score
        self.thumbnail_size = thumbnail_size
        self.max_pixels = max_pixels
        self.jpeg_quality = jpeg_quality
        self.detector: Any = None
        self.encoder: DlibEncoder | None = None
        self._dlib_lock = threading.Lock()  # dlib's networks keep state between calls

    def describe(self) -> dict[str, Any]:
        return {"dim": self.dim, "model": self.model_id, "detector": self.detector_name}

    def _load(self) -> None:
        self.detector = DETECTORS[self.detector_name](self.upsample, self.min_score)
        self.encoder = DlibEncoder()

    def analyze(self, images: Sequence[bytes | Image.Image]) -> list[list[DetectedFace]]:
        self.load()
        assert self.encoder is not None
        pending: list[list[tuple[Box, float, list[tuple[int, int]], np.ndarray]]] = []
        net_chips: list[np.ndarray] = []
        for item in images:
            work, size = self._working_image(item)
            with self._dlib_lock:
                boxes, scores = self._detect(work)
                landmarks, chips, nets = self.encoder.align(
                    np.asarray(work), boxes, self.thumbnail_size
                )
            scale = (size[0] / work.width, size[1] / work.height)
            pending.append(
                [
                    (
                        _scale_box(box, scale, size),
                        score,
                        [_scale_point(p, scale, size) for p in points],
                        chip,
                    )
                    for box, score, points, chip in zip(
                        boxes, scores, landmarks, chips, strict=True
                    )
                ]
            )
            net_chips.extend(nets)
        with self._dlib_lock:
            vectors = iter(self.encoder.embed(net_chips))
        return [
            [
                DetectedFace(
                    box=box,
                    score=score,
                    embedding=next(vectors),
                    thumbnail=self._jpeg(chip),
                    landmarks=points,
                )
                for box, score, points, chip in faces
            ]
            for faces in pending
        ]

    def _working_image(self, item: bytes | Image.Image) -> tuple[Image.Image, tuple[int, int]]:
        """-> (upright RGB working image, the upright original's size)."""
        if isinstance(item, Image.Image):
            return to_rgb(item), item.size
        info = image_info(item, max_pixels=self.max_pixels)
        long_side = max(info.width, info.height)
        # The smallest libjpeg scale (1/8..1/2) that keeps the detection resolution; other
        # formats are simply resized to it.
        side = next(
            (long_side // k for k in (8, 4, 2) if long_side // k >= self.detect_side), long_side
        )
        decoded = decode_image(item, max_pixels=self.max_pixels, max_side=side)
        return decoded.image, (decoded.width, decoded.height)

    def _detect(self, work: Image.Image) -> tuple[list[Box], list[float]]:
        """Detect on a copy at most detect_side long; boxes in `work`'s pixels."""
        small = work
        if max(work.size) > self.detect_side:
            ratio = self.detect_side / max(work.size)
            size = (max(1, round(work.width * ratio)), max(1, round(work.height * ratio)))
            small = work.resize(size, Image.Resampling.BILINEAR)
        scale = (work.width / small.width, work.height / small.height)
        boxes, scores = [], []
        for box, score in self.detector.detect(np.asarray(small)):
            boxes.append(_scale_box(box, scale, work.size))
            scores.append(score)
        return boxes, scores

    def _jpeg(self, chip: np.ndarray) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(chip).save(buf, "JPEG", quality=self.jpeg_quality)
        return buf.getvalue()


def _scale_box(box: Box, scale: tuple[float, float], size: tuple[int, int]) -> Box:
    """A box scaled up (scale >= 1) into an image of `size`, at least 1 px and inside it."""
    x, y, w, h = box
    left = min(round(x * scale[0]), size[0] - 1)
    top = min(round(y * scale[1]), size[1] - 1)
    right = min(max(round((x + w) * scale[0]) - 1, left), size[0] - 1)
    bottom = min(max(round((y + h) * scale[1]) - 1, top), size[1] - 1)
    return left, top, right - left + 1, bottom - top + 1


def _scale_point(point: tuple[int, int], scale: tuple[float, float], size: tuple[int, int]):
    x = min(max(round(point[0] * scale[0]), 0), size[0] - 1)
    y = min(max(round(point[1] * scale[1]), 0), size[1] - 1)
    return x, y
