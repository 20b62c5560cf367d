"""Embedder throughput: EfficientNet-Lite0 (real weights) images/s by forward-pass batch size.

Times `embed_images` end to end (Pillow preprocessing included) on 640x480-ish photos that
scikit-image ships, after a warm-up; the figure is the best of `--rounds` rounds of `--images`
images (best-of, not median: the machine is shared, and other load only ever slows a round).
Preprocessing alone is timed separately. On CPU both the eager model and the TorchScript-frozen
one (the CPU default, `optimize=True`) are timed. `--threads` sets torch's intra-op threads (1 = per core).
On a GPU (`--device cuda`, half precision) the forward pass alone is timed too, on preprocessed
tensors already on the GPU: one Pillow thread preprocessing 224 px crops bounds the end-to-end
figure there, and the forward pass is what @serve.batch shares. Writes bench/results/embed.json
(embed_cuda.json on a GPU, with the GPU's name).

    python bench/embed.py [--threads 1] [--images 64] [--rounds 3] [--device cpu|cuda]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness
from busque.models.embedding.efficientnet import EfficientNetLite0Embedder, preprocess

PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "horse", "camera"]


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", default=None, help="default 1,2,4,8,32 (GPU: up to 128)")
    args = parser.parse_args()
    on_gpu = args.device != "cpu"
    args.batches = args.batches or ("1,2,4,8,16,32,64,128" if on_gpu else "1,2,4,8,32")

    import torch

    torch.set_num_threads(args.threads)
    photos = list(harness.photos(PHOTOS).values())
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
        if on_gpu:
            rows[-1]["forward_ms_per_image"] = forward_ms(model, images[:batch], args.rounds)
            rows[-1]["dtype"] = str(model.dtype).removeprefix("torch.")
        print(
            f"{rows[-1]['mode']:>18} batch {batch:>3}: {rows[-1]['images_per_s']:>7} images/s "
            f"({rows[-1]['ms_per_image']} ms/image)",
            flush=True,
        )

    result = {
        "benchmark": "efficientnet-lite0 embed_images (preprocessing included)",
        "device": torch.cuda.get_device_name(0) if on_gpu else args.device,
        "torch_threads": args.threads,
        "torch": torch.__version__,
        "cpu": harness.cpu_model(),
        "images_per_round": len(images),
        "image_sizes": sorted({f"{p.width}x{p.height}" for p in photos}),
        "preprocess_ms_per_image": round(preprocess_ms, 2),
        "results": rows,
        "numpy": np.__version__,
        "machine": harness.machine(torch=torch.__version__, numpy=np.__version__),
    }
    if on_gpu:
        one = next(r for r in rows if r["batch_size"] == 1)
        result["forward_speedup_vs_batch_1"] = {
            str(r["batch_size"]): round(one["forward_ms_per_image"] / r["forward_ms_per_image"], 2)
            for r in rows
        }
    name = "embed_cuda" if on_gpu else "embed"
    harness.write_results(name, result, write=not args.no_write)


def forward_ms(model, images, rounds: int) -> float:
    """ms per image of the network's forward pass alone on a GPU batch (synchronised), best of
    `rounds` rounds of 20 passes."""
    import torch

    batch = np.stack([preprocess(img) for img in images])
    x = torch.from_numpy(batch).to(device=model.device, dtype=model.dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    best = float("inf")
    with torch.inference_mode():
        for _ in range(3):
            model._runner(x)
        for _ in range(rounds):
            torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(20):
                model._runner(x)
            torch.cuda.synchronize()
            best = min(best, (time.perf_counter() - t) / 20)
    return round(best / len(images) * 1000, 4)


if __name__ == "__main__":
    main()
