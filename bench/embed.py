"""Embedder throughput: EfficientNet-Lite0 (real weights) images/s at batch 1, 2, 4, 8 and 32 on CPU.

Times `embed_images` end to end (Pillow preprocessing included) on 640x480-ish photos that
scikit-image ships, after a warm-up; the figure is the best of `--rounds` rounds of `--images`
images (best-of, not median: the machine is shared, and other load only ever slows a round).
Preprocessing alone is timed separately. On CPU both the eager model and the TorchScript-frozen
one (the CPU default, `optimize=True`) are timed. `--threads` sets torch's intra-op threads (1 = per core).
Writes bench/results/embed.json.

    python bench/embed.py [--threads 1] [--images 64] [--rounds 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skdata

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from busque.models.embedding.efficientnet import (  # noqa: E402
    EfficientNetLite0Embedder,
    preprocess,
)

RESULTS = ROOT / "bench" / "results"
PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "horse", "camera"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", default="1,2,4,8,32")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    photos = [Image.fromarray(getattr(skdata, n)()).convert("RGB") for n in PHOTOS]
    images = [photos[i % len(photos)] for i in range(args.images)]

    t = time.perf_counter()
    for img in images:
        preprocess(img)
    preprocess_ms = (time.perf_counter() - t) / len(images) * 1000

    rows = []
    modes = [False, True] if args.device == "cpu" else [False]
    for optimize, batch in [(o, int(b)) for o in modes for b in args.batches.split(",")]:
        model = EfficientNetLite0Embedder(device=args.device, batch_size=batch, optimize=optimize)
        load_t = time.perf_counter()
        model.load()
        load_s = time.perf_counter() - load_t
        model.embed_images(images[:batch])  # warm-up
        times = []
        for _ in range(args.rounds):
            t = time.perf_counter()
            vectors = model.embed_images(images)
            times.append(time.perf_counter() - t)
        assert vectors.shape == (len(images), 1280)
        best = min(times)
        rows.append(
            {
                "mode": "torchscript-frozen" if model.optimized else "eager",
                "batch_size": batch,
                "images_per_s": round(len(images) / best, 1),
                "ms_per_image": round(best / len(images) * 1000, 2),
                "rounds_s": [round(x, 3) for x in times],
                "load_s": round(load_s, 3),
            }
        )
        print(
            f"{rows[-1]['mode']:>18} batch {batch:>3}: {rows[-1]['images_per_s']:>7} images/s "
            f"({rows[-1]['ms_per_image']} ms/image)",
            flush=True,
        )

    result = {
        "benchmark": "efficientnet-lite0 embed_images (preprocessing included)",
        "device": args.device,
        "torch_threads": args.threads,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "images_per_round": len(images),
        "image_sizes": sorted({f"{p.width}x{p.height}" for p in photos}),
        "preprocess_ms_per_image": round(preprocess_ms, 2),
        "results": rows,
        "numpy": np.__version__,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "embed.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
