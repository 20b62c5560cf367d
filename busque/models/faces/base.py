"""The face-analysis contract: detect, align, embed, thumbnail. Plain Python, no Ray.

A backend is a detector (an RGB array -> boxes with scores) and an encoder (an RGB array and
boxes -> landmarks, aligned chips and embeddings), so a GPU backend can replace either half.
`FaceAnalyzer` owns what every backend shares: decoding (EXIF-upright, RGB, JPEG draft decoding
of large photos), detection on a downscaled copy with boxes mapped back to the original image's
pixels, and JPEG face thumbnails.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from PIL import Image

from busque.models.base import Loadable


@dataclass
class DetectedFace:
    box: tuple[int, int, int, int]  # x, y, w, h in the upright original image's pixels
    score: float  # the detector's confidence (HOG: SVM margin; CNN: MMOD confidence)
    embedding: np.ndarray  # (dim,) float32; same person when the L2 distance is small
    thumbnail: bytes  # the aligned face chip, JPEG
    landmarks: list[tuple[int, int]] = field(default_factory=list)  # original pixels

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": list(self.box),
            "score": round(float(self.score), 4),
            "embedding": self.embedding,
            "thumbnail": self.thumbnail,
            "landmarks": [list(p) for p in self.landmarks],
        }


class FaceDetector(Protocol):
    name: str

    def detect(self, rgb: np.ndarray) -> list[tuple[tuple[int, int, int, int], float]]:
        """An (H, W, 3) uint8 array -> [((x, y, w, h), score)] in that array's pixels."""


class FaceEncoder(Protocol):
    name: str
    dim: int

    def encode(
        self, rgb: np.ndarray, boxes: Sequence[tuple[int, int, int, int]], chip_size: int
    ) -> tuple[list[list[tuple[int, int]]], list[np.ndarray], np.ndarray]:
        """Faces in `rgb` -> (landmarks per face, aligned (chip_size, chip_size, 3) chips,
        (n, dim) float32 embeddings), all in `rgb`'s pixels."""


class FaceAnalyzer(Loadable, ABC):
    """`analyze(images)`: encoded image bytes (or Pillow images) -> their faces."""

    dim: int = 128
    model_id: str = "faces"

    @abstractmethod
    def analyze(self, images: Sequence[bytes | Image.Image]) -> list[list[DetectedFace]]: ...

    def describe(self) -> dict[str, Any]:
        return {"model": self.model_id, "dim": self.dim}
