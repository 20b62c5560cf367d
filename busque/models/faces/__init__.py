"""Face analysis: one interface (`FaceAnalyzer`), backends chosen by name (dlib today)."""

from busque.models.faces.base import DetectedFace, FaceAnalyzer, FaceDetector, FaceEncoder

BACKENDS = {"dlib": "busque.models.faces.dlib_backend:DlibFaceAnalyzer"}


def create_face_analyzer(backend: str = "dlib", **options) -> FaceAnalyzer:
    import importlib

    try:
        target = BACKENDS[backend]
    except KeyError:
        raise ValueError(f"unknown face backend {backend!r}: {sorted(BACKENDS)}") from None
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)(**options)


def unavailable_reason(backend: str = "dlib") -> str | None:
    """None when the backend's package and weights are installed, else why not."""
    from busque.models.faces.dlib_backend import unavailable_reason as dlib_reason

    return dlib_reason() if backend == "dlib" else f"unknown face backend {backend!r}"


__all__ = [
    "BACKENDS",
    "DetectedFace",
    "FaceAnalyzer",
    "FaceDetector",
    "FaceEncoder",
    "create_face_analyzer",
    "unavailable_reason",
]
