"""The image-embedder contract shared by every backend (EfficientNet-Lite0, CLIP, ...).

Plain Python and torch, no Ray: a Serve deployment or a Ray Data actor wraps an `ImageEmbedder`
and calls its batch methods. Every embedding is float32, one L2-normalised row per input, so a
dot product is a cosine. Preprocessing uses Pillow and numpy only (torchvision does not work with
the CPU torch these machines use).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from busque.models.base import Loadable

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")


class NoTextTower(ValueError):
    """Text embedding was asked of a model that has no text tower."""


def resolve_device(device: str = "auto") -> str:
    """ "auto" -> "cuda" when a GPU is visible, else "cpu"; "cuda:1" style names are kept."""
    import torch

    device = (device or "auto").lower()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" or device.startswith("cuda"):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} was asked for but no CUDA device is available")
        return device
    raise ValueError(f"unknown device {device!r}: use one of {', '.join(DEVICES)}")


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def as_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


class ImageEmbedder(Loadable, ABC):
    """Backends set `model_id`, `dim`, `has_text` and implement `_load` and `_embed_images`.

    Options (constructor keywords): `device` ("auto" | "cpu" | "cuda"), `half` (None = half
    precision exactly when on CUDA; half is never used on CPU), `batch_size` (the largest batch
    one forward pass gets; longer lists are split; None = the backend's CPU or GPU default:
    on CPU small forward batches are faster per image than large ones).
    """

    model_id: str = ""
    backend: str = ""
    dim: int = 0
    has_text: bool = False
    cpu_batch_size: int = 8
    gpu_batch_size: int = 32
    # Callers may decode images down to this long side: the networks look at a 224 px crop of
    # the shorter side, which still comes from more pixels than it keeps.
    source_side: int = 512

    def __init__(
        self,
        *,
        device: str = "auto",
        half: bool | None = None,
        batch_size: int | None = None,
        **options: Any,
    ):
        super().__init__(device=device, half=half, batch_size=batch_size, **options)
        if (device or "auto").lower() not in DEVICES and not str(device).startswith("cuda"):
            raise ValueError(f"unknown device {device!r}: use one of {', '.join(DEVICES)}")
        if batch_size is not None and batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.requested_device = device
        self.requested_half = half
        self.requested_batch_size = batch_size
        self.batch_size = batch_size or self.cpu_batch_size  # final value set in load()
        self.device: str | None = None  # resolved in load()
        self.dtype: torch.dtype | None = None

    # -- identity ---------------------------------------------------------------------------

    @property
    def version(self) -> str:
        """Changes whenever the vectors would change (weights, preprocessing)."""
        return "1"

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model_id,
            "backend": self.backend,
            "version": self.version,
            "dim": self.dim,
            "has_text": self.has_text,
            "device": self.device,
            "dtype": str(self.dtype).removeprefix("torch.") if self.dtype else None,
            "batch_size": self.batch_size,
        }

    # -- device -----------------------------------------------------------------------------

    def _setup_device(self) -> None:
        """Call first in `_load`: resolves device and dtype (half only on CUDA)."""
        import torch

        self.device = resolve_device(self.requested_device)
        on_cuda = self.device.startswith("cuda")
        half = on_cuda if self.requested_half is None else (self.requested_half and on_cuda)
        self.dtype = torch.float16 if half else torch.float32
        default = self.gpu_batch_size if on_cuda else self.cpu_batch_size
        self.batch_size = self.requested_batch_size or default

    # -- public batch API -------------------------------------------------------------------

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, dim) float32, L2-normalised rows, in input order."""
        self.load()
        return self._batched(list(images), self._embed_images, self.dim)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32, L2-normalised rows in the image space; NoTextTower without one."""
        if not self.has_text:
            raise NoTextTower(f"model {self.model_id!r} has no text tower: text search needs clip")
        self.load()
        return self._batched(list(texts), self._embed_texts, self.dim)

    def labels(self, images: Sequence[Image.Image], k: int = 5) -> list[list[dict[str, Any]]]:
        """Top-k {"label", "score"} per image; [] per image when the model has no classifier."""
        return self.analyze(images, k=k)[1]

    def analyze(
        self, images: Sequence[Image.Image], k: int = 5
    ) -> tuple[np.ndarray, list[list[dict[str, Any]]]]:
        """Embeddings and top-k labels together (one forward pass where the backend can)."""
        images = list(images)
        return self.embed_images(images), [[] for _ in images]

    def prepare(self, image: Image.Image) -> Any:
        """One image -> what `analyze_prepared` takes: the per-image CPU work of preprocessing.
        It needs no loaded model and is thread-safe, so a server can prepare queued images on
        other threads while the model runs a batch."""
        return as_rgb(image)

    def analyze_prepared(
        self, prepared: Sequence[Any], k: int = 5
    ) -> tuple[np.ndarray, list[list[dict[str, Any]]]]:
        """`analyze` of images already passed through `prepare`."""
        return self.analyze(prepared, k=k)

    # -- backend hooks ----------------------------------------------------------------------

    @abstractmethod
    def _embed_images(self, images: list[Image.Image]) -> np.ndarray:
        """One batch (len <= batch_size) -> (n, dim) array; normalised here or by the caller."""

    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        raise NoTextTower(f"model {self.model_id!r} has no text tower")

    def _batched(self, items: list, fn, dim: int) -> np.ndarray:
        if not items:
            return np.zeros((0, dim), dtype=np.float32)
        out = [fn(items[i : i + self.batch_size]) for i in range(0, len(items), self.batch_size)]
        return l2_normalize(np.concatenate(out, axis=0))
