"""Near-duplicate quality: precision and recall of the pHash path, the embedding path and hybrid,
at busque's default thresholds, on real photos that ship in scikit-image and transformed copies.

Every pair of images is a question: "near duplicates?" — yes when both come from the same photo.
Writes bench/results/quality.json and quality.md.

    python bench/quality.py
"""

from __future__ import annotations

import io
import itertools
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness
from busque.config import IndexSettings  # the service's own defaults
from busque.media.decode import decode_image
from busque.media.normalize import normalized_jpeg
from busque.media.phash import hamming, phash_bytes
from busque.models.embedding import create_embedder
from busque.models.embedding.efficientnet import pet_label

PHOTOS = (
    "astronaut",
    "brick",
    "camera",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "page",
    "retina",
    "rocket",
    "cell",
    "logo",
    "text",
)


def jpeg(image: Image.Image, quality: int = 92) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def watermark(image: Image.Image) -> Image.Image:
    marked = image.convert("RGB").copy()
    draw = ImageDraw.Draw(marked)
    w, h = marked.size
    for row in range(3):
        draw.text((w * 0.1, h * (0.3 + 0.2 * row)), "(c) busque sample", fill=(255, 255, 255))
    return marked


TRANSFORMS = {
    "resize_50": lambda im: im.resize((im.width // 2, im.height // 2)),
    "crop_10": lambda im: im.crop(
        (im.width // 20, im.height // 20, im.width - im.width // 20, im.height - im.height // 20)
    ),
    "jpeg_q30": lambda im: Image.open(io.BytesIO(jpeg(im, 30))),
    "brightness": lambda im: ImageEnhance.Brightness(im.convert("RGB")).enhance(1.3),
    "rotate_5": lambda im: im.convert("RGB").rotate(
        5, resample=Image.Resampling.BICUBIC, expand=False
    ),
    "mirror": ImageOps.mirror,
    "watermark": watermark,
}


def scores(f1_inputs: list[tuple[bool, bool]]) -> dict:
    tp = sum(1 for truth, said in f1_inputs if truth and said)
    fp = sum(1 for truth, said in f1_inputs if not truth and said)
    fn = sum(1 for truth, said in f1_inputs if truth and not said)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
    }


def main() -> None:
    args = harness.parser(__doc__).parse_args()
    defaults = IndexSettings()
    items: list[tuple[str, str, bytes]] = []  # (source photo, transform, JPEG bytes)
    for name, original in harness.photos(PHOTOS).items():
        items.append((name, "original", jpeg(original)))
        for transform, fn in TRANSFORMS.items():
            items.append((name, transform, jpeg(fn(original))))

    embedder = create_embedder("efficientnet-lite0")
    decoded = [decode_image(data, max_pixels=50_000_000, max_side=2048) for *_, data in items]
    normalized = [Image.open(io.BytesIO(normalized_jpeg(d))) for d in decoded]
    vectors, labels = embedder.analyze(normalized)
    hashes = [phash_bytes(data) for *_, data in items]

    w = defaults.w_visual
    verdicts = {"phash": [], "embedding": [], "hybrid": []}
    for i, j in itertools.combinations(range(len(items)), 2):
        truth = items[i][0] == items[j][0]
        distance = hamming(hashes[i], hashes[j])
        cosine = float(np.dot(vectors[i], vectors[j]))
        hybrid = w * cosine + (1 - w) * (1 - distance / 64)
        verdicts["phash"].append((truth, distance <= defaults.duplicate_radius))
        verdicts["embedding"].append((truth, cosine >= defaults.near_duplicate_cosine))
        verdicts["hybrid"].append((truth, hybrid >= defaults.near_duplicate_score))

    chelsea = next(k for k, item in enumerate(items) if item[:2] == ("chelsea", "original"))
    results = {
        "benchmark": "near-duplicate detection on all pairs",
        "machine": harness.machine(),
        "photos": list(PHOTOS),
        "transforms": list(TRANSFORMS),
        "images": len(items),
        "pairs": len(verdicts["phash"]),
        "positive_pairs": sum(truth for truth, _ in verdicts["phash"]),
        "thresholds": {
            "phash_max_distance": defaults.duplicate_radius,
            "embedding_min_cosine": defaults.near_duplicate_cosine,
            "hybrid_min_score": defaults.near_duplicate_score,
            "hybrid_weights": {"cosine": w, "phash_similarity": round(1 - w, 3)},
        },
        "paths": {path: scores(v) for path, v in verdicts.items()},
        "chelsea": {"top_labels": labels[chelsea][:3], **pet_label(labels[chelsea])},
    }
    best_single = max(results["paths"]["phash"]["f1"], results["paths"]["embedding"]["f1"])
    results["hybrid_beats_both_on_f1"] = results["paths"]["hybrid"]["f1"] > best_single
    lines = [
        "# Near-duplicate quality (defaults, all pairs)",
        "",
        f"{len(items)} images: {len(PHOTOS)} scikit-image photos x (original + "
        f"{len(TRANSFORMS)} transforms: {', '.join(TRANSFORMS)}); {results['pairs']} pairs, "
        f"{results['positive_pairs']} of them near duplicates.",
        "",
        "| path | threshold | precision | recall | F1 |",
        "|---|---|---|---|---|",
    ]
    thresholds = {
        "phash": f"distance <= {defaults.duplicate_radius}",
        "embedding": f"cosine >= {defaults.near_duplicate_cosine}",
        "hybrid": f"{w}*cos + {1 - w:.1f}*(1-d/64) >= {defaults.near_duplicate_score}",
    }
    for path, s in results["paths"].items():
        lines.append(
            f"| {path} | {thresholds[path]} | {s['precision']} | {s['recall']} | {s['f1']} |"
        )
    lines += [
        "",
        f"Hybrid beats both on F1: {results['hybrid_beats_both_on_f1']}.",
        f"chelsea: species {results['chelsea']['species']}, breed "
        f"{results['chelsea']['breed']}, top labels {results['chelsea']['top_labels']}.",
    ]
    harness.write_results("quality", results, "\n".join(lines), write=not args.no_write)


if __name__ == "__main__":
    main()
