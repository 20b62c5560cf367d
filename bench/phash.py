"""pHash benchmark: busque (fast and exact modes) vs imagehash.phash, files/s on one core.

Side by side in one run, on 12-megapixel (4000x3000) and 1-megapixel (1155x866) JPEGs made from
the photos scikit-image ships (upscaled, quality 90). Each round times every method on every
file in turn, including reading the file; the figure is the median round. Also reports how many
fast hashes are within Hamming distance 4 of imagehash's, and the time of a bare JPEG decode at
full size and in draft mode (the entropy-decoding floor). Writes bench/results/phash.json and .md.

    python bench/phash.py [--rounds 3]
"""

from __future__ import annotations

import os

# One thread everywhere, before numpy (and its BLAS) is imported: the figures are per core.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import imagehash  # noqa: E402
import numpy as np  # noqa: E402
import PIL  # noqa: E402
from PIL import Image, features  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness  # noqa: E402
from busque.media.phash import DRAFT_SIZE, hamming, phash_bytes, phash_many  # noqa: E402

PHOTOS = [
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "camera",
    "horse",
    "hubble_deep_field",
    "immunohistochemistry",
    "coins",
    "clock",
    "retina",
    "moon",
]
SIZES = {"12MP": (4000, 3000), "1MP": (1155, 866)}
FLOORS = {"12MP": 5.0, "1MP": 2.0}


def make_files(folder: Path) -> dict[str, list[Path]]:
    files: dict[str, list[Path]] = {label: [] for label in SIZES}
    for name, img in harness.photos(PHOTOS).items():
        for label, size in SIZES.items():
            path = folder / f"{name}_{label}.jpg"
            img.resize(size, Image.Resampling.BICUBIC).save(path, "JPEG", quality=90)
            files[label].append(path)
    return files


def method_imagehash(path: Path) -> str:
    return str(imagehash.phash(Image.open(path)))


def method_fast(path: Path) -> str:
    return phash_bytes(path.read_bytes())


def method_exact(path: Path) -> str:
    return phash_bytes(path.read_bytes(), mode="exact")


def decode_full(path: Path) -> None:
    Image.open(path).load()


def decode_draft(path: Path) -> None:
    img = Image.open(path)
    img.draft("L", (DRAFT_SIZE, DRAFT_SIZE))
    img.load()


METHODS = {
    "imagehash.phash": method_imagehash,
    "busque fast": method_fast,
    "busque exact": method_exact,
    "decode full (RGB)": decode_full,
    "decode draft (L)": decode_draft,
}


def run(paths: list[Path], rounds: int) -> dict[str, float]:
    """Median seconds per file for every method, methods interleaved round by round."""
    per_round: dict[str, list[float]] = {name: [] for name in METHODS}
    per_round["busque fast, phash_many"] = []
    for fn in METHODS.values():  # warm-up: imports, caches
        fn(paths[0])
    for _ in range(rounds):
        for name, fn in METHODS.items():
            start = time.perf_counter()
            for path in paths:
                fn(path)
            per_round[name].append((time.perf_counter() - start) / len(paths))
        start = time.perf_counter()
        phash_many([p.read_bytes() for p in paths])
        per_round["busque fast, phash_many"].append((time.perf_counter() - start) / len(paths))
    return {name: statistics.median(times) for name, times in per_round.items()}


def machine() -> dict:
    return harness.machine(
        pillow=PIL.__version__,
        libjpeg_turbo=features.version("libjpeg_turbo"),
        numpy=np.__version__,
        imagehash=imagehash.__version__,
        threads=1,
    )


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    results: dict = {"machine": machine(), "rounds": args.rounds, "draft_size": DRAFT_SIZE}
    with tempfile.TemporaryDirectory() as tmp:
        files = make_files(Path(tmp))
        for label, paths in files.items():
            ref = {p: method_imagehash(p) for p in paths}
            fast = {p: method_fast(p) for p in paths}
            distances = [hamming(fast[p], ref[p]) for p in paths]
            exact_equal = sum(method_exact(p) == ref[p] for p in paths)
            seconds = run(paths, args.rounds)
            base = seconds["imagehash.phash"]
            results[label] = {
                "files": len(paths),
                "size": list(SIZES[label]),
                "bytes_mean": int(statistics.mean(p.stat().st_size for p in paths)),
                "ms_per_file": {k: round(v * 1000, 2) for k, v in seconds.items()},
                "files_per_s": {k: round(1 / v, 1) for k, v in seconds.items()},
                "speedup_vs_imagehash": {k: round(base / v, 2) for k, v in seconds.items()},
                "floor": FLOORS[label],
                "fast_within_4": sum(d <= 4 for d in distances) / len(paths),
                "fast_distance_max": max(distances),
                "exact_equal": exact_equal / len(paths),
            }
            print(label, json.dumps(results[label]["speedup_vs_imagehash"]), flush=True)

    all_d = [results[label]["fast_within_4"] * results[label]["files"] for label in SIZES]
    results["fast_within_4_all"] = sum(all_d) / sum(results[label]["files"] for label in SIZES)
    results["pass"] = all(
        results[label]["speedup_vs_imagehash"]["busque fast"] >= FLOORS[label] for label in SIZES
    ) and (results["fast_within_4_all"] >= 0.99)

    harness.write_results("phash", results, markdown(results), write=not args.no_write)


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"# pHash benchmark ({m['cores']} cores, {m['cpu']})",
        "",
        f"One process, one thread (OMP/OPENBLAS/MKL_NUM_THREADS=1); Python {m['python']}, "
        f"Pillow {m['pillow']} (libjpeg-turbo {m['libjpeg_turbo']}), numpy {m['numpy']}, "
        f"imagehash {m['imagehash']}. {len(PHOTOS)} scikit-image photos upscaled to each size, "
        f"JPEG quality 90; median of {results['rounds']} rounds, each method on every file in "
        "turn, file read included. `busque fast` decodes JPEGs in draft mode (greyscale, "
        f"libjpeg scaling to >= {results['draft_size']} px a side) and does the DCT as a matmul; "
        "`busque exact` is imagehash's algorithm (bit for bit) plus EXIF orientation.",
        "",
        "| size | method | ms/file | files/s | x imagehash |",
        "|---|---|---|---|---|",
    ]
    for label in SIZES:
        r = results[label]
        for name, ms in r["ms_per_file"].items():
            ratio = r["speedup_vs_imagehash"][name]
            lines.append(
                f"| {label} | {name} | {ms:.2f} | {r['files_per_s'][name]:.1f} | {ratio:.2f} |"
            )
    lines += [
        "",
        "| size | fast >= floor | fast within 4 bits of imagehash | max distance | exact == imagehash |",
        "|---|---|---|---|---|",
    ]
    for label in SIZES:
        r = results[label]
        fast = r["speedup_vs_imagehash"]["busque fast"]
        lines.append(
            f"| {label} | {fast:.2f}x >= {r['floor']:.0f}x: {'yes' if fast >= r['floor'] else 'NO'}"
            f" | {r['fast_within_4']:.0%} | {r['fast_distance_max']} | {r['exact_equal']:.0%} |"
        )
    lines += [
        "",
        f"All files: {results['fast_within_4_all']:.1%} of fast hashes within distance 4 "
        f"(floor 99%). Overall: {'PASS' if results['pass'] else 'FAIL'}.",
        "",
        "The `decode` rows are a bare Pillow decode of the same files, no hashing: `decode draft "
        "(L)` is the entropy-decoding floor the fast mode works against (libjpeg must still "
        "Huffman-decode every block; only the IDCT and colour work shrink).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
