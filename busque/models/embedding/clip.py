"""The `clip` backend: a transformers CLIPModel with image and text towers, so text finds images.

`model_path` is a local directory (what `save_pretrained` writes: config.json, the weights,
preprocessor_config.json, the tokenizer files) or a hub id. The weights are configuration: none
ship with busque; with HF_HUB_OFFLINE=1 (or `local_files_only=True`) nothing is downloaded.

Image preprocessing is the checkpoint's own CLIPImageProcessor, in its Pillow/numpy
implementation (transformers' default one needs torchvision, which cannot be installed beside the
CPU torch). Both towers' projected embeddings are L2-normalised; `labels()` returns [] per image
(CLIP has no classifier; zero-shot labels would be a text query).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from busque.models.embedding.base import ImageEmbedder, as_rgb


def _image_processor_class():
    try:  # transformers >= 5: the Pillow backend, named explicitly (no torchvision warning)
        from transformers import CLIPImageProcessorPil

        return CLIPImageProcessorPil, {}
    except ImportError:  # transformers 4.x: the slow (numpy) processor
        from transformers import CLIPImageProcessor

        return CLIPImageProcessor, {"use_fast": False}


class ClipEmbedder(ImageEmbedder):
    """Options: `model_path` (dir or hub id, required), `local_files_only` (default False:
    transformers' own rule, so HF_HUB_OFFLINE=1 forbids downloads), plus device/half/batch_size."""

    backend = "clip"
    has_text = True

    def __init__(
        self,
        *,
        model_path: str,
        local_files_only: bool = False,
        model_id: str = "clip",
        **options: Any,
    ):
        if not model_path:
            raise ValueError("the clip backend needs model_path (a local directory or hub id)")
        super().__init__(model_path=str(model_path), local_files_only=local_files_only, **options)
        self.model_path = str(model_path)
        self.local_files_only = local_files_only
        self.model_id = model_id
        self.model: Any = None
        self.image_processor: Any = None
        self.tokenizer: Any = None
        self.max_text_length = 77
        self._version = "unloaded"

    @property
    def version(self) -> str:
        return self._version

    def _load(self) -> None:
        import torch  # noqa: F401 - fail early with a clear ImportError
        from transformers import AutoTokenizer, CLIPModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # tqdm bars in a replica's log help nobody
        self._setup_device()
        kw = {"local_files_only": self.local_files_only}
        processor_cls, processor_kw = _image_processor_class()
        self.image_processor = processor_cls.from_pretrained(self.model_path, **kw, **processor_kw)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path, **kw)
        model = CLIPModel.from_pretrained(self.model_path, **kw)
        model.eval().requires_grad_(False)
        self.model = model.to(device=self.device, dtype=self.dtype)
        config = model.config
        self.dim = int(config.projection_dim)
        self.max_text_length = int(
            min(
                config.text_config.max_position_embeddings,
                getattr(self.tokenizer, "model_max_length", 77) or 77,
            )
        )
        self._version = self._compute_version(config)

    def _compute_version(self, config) -> str:
        """The checkpoint's name plus a digest of its config (and hub commit when known)."""
        name = Path(self.model_path.rstrip("/")).name or self.model_path
        digest = hashlib.sha256(config.to_json_string(use_diff=False).encode()).hexdigest()[:10]
        commit = getattr(config, "_commit_hash", None)
        return f"{name}-{commit[:10] if commit else digest}"

    def _embed_images(self, images: list[Image.Image]) -> np.ndarray:
        import torch

        pixels = self.image_processor(images=[as_rgb(i) for i in images], return_tensors="np")
        with torch.inference_mode():
            x = torch.from_numpy(np.asarray(pixels["pixel_values"])).to(self.device, self.dtype)
            # = CLIPModel.get_image_features, spelled out: its return type changed in v5.
            pooled = self.model.vision_model(pixel_values=x).pooler_output
            return self.model.visual_projection(pooled).float().cpu().numpy()

    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        tokens = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_text_length,
            return_tensors="pt",
        )
        with torch.inference_mode():
            out = self.model.text_model(
                input_ids=tokens["input_ids"].to(self.device),
                attention_mask=tokens["attention_mask"].to(self.device),
            )
            return self.model.text_projection(out.pooler_output).float().cpu().numpy()
