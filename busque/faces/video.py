"""A video's faces: the face model on a few frames sampled over the video, and one face kept per
person seen (of detections whose embeddings lie within `same_distance` of each other, the best
scored), with the time of the frame it came from."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from busque.models.faces.base import DetectedFace


def video_faces(
    frames: Sequence[tuple[float, Image.Image]],
    analyze: Callable[[list[Image.Image]], list[list[DetectedFace]]],
    same_distance: float,
) -> list[tuple[float, DetectedFace]]:
    """(frame time in seconds, face) for each distinct face, best scored first."""
    found = analyze([image for _, image in frames])
    candidates = [(t, face) for (t, _), faces in zip(frames, found, strict=True) for face in faces]
    candidates.sort(key=lambda item: -item[1].score)
    kept: list[tuple[float, DetectedFace]] = []
    for t, face in candidates:
        if all(
            np.linalg.norm(face.embedding - other.embedding) > same_distance for _, other in kept
        ):
            kept.append((t, face))
    return kept
