"""Image embedders: one interface (`ImageEmbedder`), several backends (EfficientNet-Lite0, CLIP)."""

from busque.models.embedding.base import ImageEmbedder, NoTextTower, l2_normalize, resolve_device

BACKENDS = {
    "efficientnet-lite0": "busque.models.embedding.efficientnet:EfficientNetLite0Embedder",
    "clip": "busque.models.embedding.clip:ClipEmbedder",
}


def create_embedder(backend: str = "efficientnet-lite0", **options) -> ImageEmbedder:
    """Build a backend by name without importing the others (torch/transformers load lazily)."""
    import importlib

    try:
        target = BACKENDS[backend]
    except KeyError:
        raise ValueError(f"unknown embedder backend {backend!r}: {sorted(BACKENDS)}") from None
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)(**options)


__all__ = [
    "BACKENDS",
    "ImageEmbedder",
    "NoTextTower",
    "create_embedder",
    "l2_normalize",
    "resolve_device",
]
