"""Tiny randomly initialised models the tests build offline (no hub, no downloads).

`build_tiny_clip(path)` writes a complete CLIP checkpoint directory (config, safetensors weights,
preprocessor_config.json, byte-level BPE tokenizer files) that `ClipEmbedder(model_path=path)`
loads exactly as it would load a real one.
"""

from __future__ import annotations

import json
from pathlib import Path

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
# A few merges so the BPE actually merges something ("th", "the</w>", "cat</w>", ...).
MERGES = [("t", "h"), ("th", "e</w>"), ("c", "a"), ("ca", "t</w>"), ("d", "o"), ("do", "g</w>")]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable unicode map."""
    bs = list(range(ord("!"), ord("~") + 1))
    bs += list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def write_byte_level_vocab(path: Path) -> int:
    """vocab.json + merges.txt for a byte-level CLIP BPE; returns the vocabulary size."""
    chars = list(_bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars]
    tokens += [a + b for a, b in MERGES]
    tokens += [BOS, EOS]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    (path / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (path / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in MERGES), encoding="utf-8"
    )
    return len(vocab)


def build_tiny_clip(path: str | Path, *, seed: int = 0) -> Path:
    """A tiny random CLIPModel + tokenizer + 32x32 image processor, saved into `path`."""
    import torch
    from transformers import (
        CLIPConfig,
        CLIPModel,
        CLIPTextConfig,
        CLIPTokenizer,
        CLIPVisionConfig,
    )

    from busque.models.embedding.clip import _image_processor_class

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab_size = write_byte_level_vocab(path)
    tokenizer = CLIPTokenizer.from_pretrained(str(path), model_max_length=32)
    bos_id, eos_id = tokenizer.convert_tokens_to_ids([BOS, EOS])

    text = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=32,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )
    vision = CLIPVisionConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
    )
    config = CLIPConfig(
        text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=16
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    model.save_pretrained(str(path), safe_serialization=True)

    processor_cls, _ = _image_processor_class()
    processor = processor_cls(
        size={"shortest_edge": 32},
        crop_size={"height": 32, "width": 32},
    )
    processor.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path
