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


# ---- Shap-E ------------------------------------------------------------------------------------


def _cube_edges() -> list[tuple[tuple[int, int, int], tuple[int, int, int]]]:
    """The 12 edges of a cube as diffusers' MeshDecoder numbers them (its
    `_create_flat_edge_indices`): x-edges at (y, z) = (0,0), (1,0), (0,1), (1,1), then y-edges
    at (x, z), then z-edges at (x, y)."""
    edges = []
    for axis in range(3):
        first, second = (a for a in range(3) if a != axis)
        for a, b in ((0, 0), (1, 0), (0, 1), (1, 1)):
            start = [0, 0, 0]
            start[first], start[second] = a, b
            end = list(start)
            end[axis] = 1
            edges.append((tuple(start), tuple(end)))
    return edges


def marching_cubes_table():
    """The lookup table a real Shap-E checkpoint carries in its MeshDecoder (`cases`: 256 x 5
    triangles of edge indices, `masks`: which are used), derived here: for each of the 256
    inside/outside patterns of a cube's corners (corner bit = x + 2y + 4z, inside = field > 0),
    the crossed edges are joined face by face into loops (an ambiguous face cuts off each inside
    corner on its own), and each loop is fanned into triangles facing outwards."""
    import itertools

    import numpy as np

    edges = _cube_edges()
    faces = []
    for axis in range(3):
        for side in (0, 1):
            on_face = {c for c in itertools.product((0, 1), repeat=3) if c[axis] == side}
            faces.append([i for i, (s, e) in enumerate(edges) if s in on_face and e in on_face])
    cases = np.zeros((256, 5, 3), dtype=np.int64)
    masks = np.zeros((256, 5), dtype=bool)

    def midpoint(i: int):
        return (np.array(edges[i][0]) + np.array(edges[i][1])) / 2

    for case in range(256):

        def inside(corner, case=case) -> bool:
            return bool(case >> (corner[0] + 2 * corner[1] + 4 * corner[2]) & 1)

        crossed = {i for i, (s, e) in enumerate(edges) if inside(s) != inside(e)}
        links: dict[int, list[int]] = {i: [] for i in crossed}
        for face in faces:
            on = [i for i in face if i in crossed]
            if len(on) == 2:
                pairs = [on]
            else:  # 0, or 4 (ambiguous): one segment around each inside corner
                corners = {c for i in on for c in edges[i] if inside(c)}
                pairs = [[i for i in on if c in edges[i]] for c in corners]
            for a, b in pairs:
                links[a].append(b)
                links[b].append(a)
        triangles: list[tuple[int, int, int]] = []
        left = set(crossed)
        while left:
            loop = [min(left)]
            left.remove(loop[0])
            while nexts := [n for n in links[loop[-1]] if n in left]:
                loop.append(nexts[0])
                left.remove(nexts[0])
            outward = sum(
                (np.array(edges[i][1]) - np.array(edges[i][0])) * (-1 if inside(edges[i][1]) else 1)
                for i in loop
            )
            fan = [(loop[0], loop[k], loop[k + 1]) for k in range(1, len(loop) - 1)]
            normal = sum(
                np.cross(midpoint(b) - midpoint(a), midpoint(c) - midpoint(a)) for a, b, c in fan
            )
            if np.dot(normal, outward) < 0:
                fan = [(a, c, b) for a, b, c in fan]
            triangles += fan
        for k, triangle in enumerate(triangles):
            cases[case, k] = triangle
            masks[case, k] = True
    return cases, masks


def _tiny_shap_e_parts(seed: int):
    """Shap-E's prior, renderer and Heun scheduler at the sizes of diffusers' own tests, the
    renderer with a marching-cubes table and a signed distance that is positive inside the
    volume (a random field rarely has a surface: its mesh would be empty)."""
    import torch
    from diffusers import HeunDiscreteScheduler, PriorTransformer
    from diffusers.pipelines.shap_e import ShapERenderer

    torch.manual_seed(seed)
    prior = PriorTransformer(
        num_attention_heads=2,
        attention_head_dim=16,
        embedding_dim=32,
        num_embeddings=32,
        embedding_proj_dim=32,
        time_embed_dim=128,
        num_layers=1,
        clip_embed_dim=64,
        additional_embeddings=0,
        time_embed_act_fn="gelu",
        norm_in_type="layer",
        encoder_hid_proj_type=None,
        added_emb_type=None,
    )
    renderer = ShapERenderer(
        param_shapes=((8, 93), (8, 8), (8, 8), (8, 8)),
        d_latent=32,
        d_hidden=8,
        n_output=12,
        background=(0.1, 0.1, 0.1),
    )
    cases, masks = marching_cubes_table()
    with torch.no_grad():
        renderer.mesh_decoder.cases.copy_(torch.from_numpy(cases))
        renderer.mesh_decoder.masks.copy_(torch.from_numpy(masks))
        sdf = renderer.mlp.mlp[-1]  # output 0 is the signed distance (before a tanh)
        sdf.weight[0] *= 0.1
        sdf.bias[0] = 0.5
    scheduler = HeunDiscreteScheduler(
        beta_schedule="exp",
        num_train_timesteps=1024,
        prediction_type="sample",
        use_karras_sigmas=True,
        clip_sample=True,
        clip_sample_range=1.0,
    )
    return prior.eval(), renderer.eval(), scheduler


def build_tiny_shap_e(path: str | Path, *, image: bool = False, seed: int = 0) -> Path:
    """A complete, randomly initialised diffusers Shap-E directory in `path`: text-to-3D
    (ShapEPipeline: CLIP text encoder with projection, byte-level BPE tokenizer) or, with
    `image`, image-to-3D (ShapEImg2ImgPipeline: CLIP vision encoder, 32 px image processor).
    `from_pretrained(path)` loads it the way it loads openai/shap-e."""
    import torch
    from diffusers import ShapEImg2ImgPipeline, ShapEPipeline
    from transformers import (
        CLIPTextConfig,
        CLIPTextModelWithProjection,
        CLIPTokenizer,
        CLIPVisionConfig,
        CLIPVisionModel,
    )

    from busque.models.embedding.clip import _image_processor_class

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    prior, renderer, scheduler = _tiny_shap_e_parts(seed)
    torch.manual_seed(seed)
    if image:
        encoder = CLIPVisionModel(
            CLIPVisionConfig(
                hidden_size=32,
                image_size=32,
                projection_dim=32,
                intermediate_size=37,
                num_attention_heads=4,
                num_hidden_layers=2,
                patch_size=4,
            )
        )
        processor_cls, _ = _image_processor_class()
        processor = processor_cls(
            crop_size={"height": 32, "width": 32},
            size={"shortest_edge": 32},
            do_center_crop=True,
            do_normalize=True,
            do_resize=True,
            image_mean=[0.48145466, 0.4578275, 0.40821073],
            image_std=[0.26862954, 0.26130258, 0.27577711],
        )
        pipe = ShapEImg2ImgPipeline(
            prior=prior,
            image_encoder=encoder.eval(),
            image_processor=processor,
            shap_e_renderer=renderer,
            scheduler=scheduler,
        )
        pipe.save_pretrained(str(path), safe_serialization=True)
        return path
    vocab_dir = path / "_vocab"
    vocab_dir.mkdir(exist_ok=True)
    vocab_size = write_byte_level_vocab(vocab_dir)
    tokenizer = CLIPTokenizer.from_pretrained(str(vocab_dir), model_max_length=77)
    bos_id, eos_id = tokenizer.convert_tokens_to_ids([BOS, EOS])
    encoder = CLIPTextModelWithProjection(
        CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            projection_dim=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=77,
            bos_token_id=bos_id,
            eos_token_id=eos_id,
            pad_token_id=eos_id,
        )
    )
    pipe = ShapEPipeline(
        prior=prior,
        text_encoder=encoder.eval(),
        tokenizer=tokenizer,
        scheduler=scheduler,
        shap_e_renderer=renderer,
    )
    pipe.save_pretrained(str(path), safe_serialization=True)
    for name in ("vocab.json", "merges.txt"):
        (vocab_dir / name).unlink()
    vocab_dir.rmdir()
    return path
