"""Tiny randomly initialised models that tests and benchmarks build offline (no hub, no
downloads).

`build_tiny_clip(path)` writes a complete CLIP checkpoint directory (config, safetensors weights,
preprocessor_config.json, byte-level BPE tokenizer files) that `ClipEmbedder(model_path=path)`
loads exactly as it would load a real one. `build_tiny_stable_diffusion(path)` writes a diffusers
Stable Diffusion directory that `StableDiffusionPipeline.from_pretrained(path)` loads the same way.
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


def build_tiny_stable_diffusion(
    path: str | Path,
    *,
    seed: int = 0,
    unet_channels: tuple[int, ...] = (32, 64),
    width: int = 32,
    text_layers: int = 5,
) -> Path:
    """A complete, randomly initialised diffusers Stable Diffusion directory in `path`.

    model_index.json, unet, vae, text_encoder, tokenizer (byte-level BPE) and a DDIM scheduler;
    no safety checker or feature extractor (`requires_safety_checker` False), as a local copy of
    real weights may also be saved. `StableDiffusionPipeline.from_pretrained(path)` loads it the
    way it loads real weights. `width` is the text encoder's width and the UNet's
    cross-attention dimension; `unet_channels` (two entries or more) sets the UNet's size (the
    benchmark builds a larger one so a step is not sub-millisecond noise). The VAE has two
    blocks: latents are half the image size (real SD: an eighth).
    """
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab_dir = path / "_vocab"
    vocab_dir.mkdir(exist_ok=True)
    vocab_size = write_byte_level_vocab(vocab_dir)
    tokenizer = CLIPTokenizer.from_pretrained(str(vocab_dir), model_max_length=77)
    bos_id, eos_id = tokenizer.convert_tokens_to_ids([BOS, EOS])

    torch.manual_seed(seed)
    blocks = len(unet_channels)
    unet = UNet2DConditionModel(
        block_out_channels=unet_channels,
        layers_per_block=2,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (blocks - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (blocks - 1) + ("UpBlock2D",),
        cross_attention_dim=width,
        attention_head_dim=8,
        norm_num_groups=min(32, unet_channels[0]),
    )
    vae = AutoencoderKL(
        block_out_channels=(32, 64),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        sample_size=64,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=width,
            intermediate_size=2 * width,
            num_hidden_layers=text_layers,
            num_attention_heads=4,
            max_position_embeddings=77,
            bos_token_id=bos_id,
            eos_token_id=eos_id,
            pad_token_id=eos_id,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        unet=unet.eval(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(str(path), safe_serialization=True)
    for name in ("vocab.json", "merges.txt"):
        (vocab_dir / name).unlink()
    vocab_dir.rmdir()
    return path
