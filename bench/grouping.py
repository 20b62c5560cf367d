"""Grouping a whole library into duplicate groups: the time and memory to find every duplicate
pair of 100,000 and 1,000,000 catalogued items (synthetic pHashes and embeddings).

busque: busque.index.duplicate_pairs.find_pairs over a HybridIndex, as GET /v1/duplicates runs
it in the Matcher: a multi-index-hashing radius search per pHash and per turn or mirror of it
(7 more codes an item), and a k-NN search per embedding (FAISS: exact below
`hnsw_threshold` items, HNSW above). Against:

- brute force: every pair compared (numpy, blocks of XOR-popcounts and of dot products): what
  a script without an index does;
- imagededup 0.3.3 (`PHash().find_duplicates(encoding_map=..., max_distance_threshold=...)`,
  its documented call, with its default search on Linux, `brute_force_cython`, on all cores).
  Its CNN module is replaced by a stub before import (it needs torchvision, not installed
  here; the hashing search never touches it). Only the pHash half: it has no turns, and its
  CNN search is a different model.

The data: pHash bits skewed per position (as real codes are), a tenth of the items near copies
of another (0-6 bits off, an embedding a little off), a twentieth turned copies (a turn's code
near another item's code); embeddings of `--dim` dimensions. Each (method, size) runs in its
own process, so its peak RSS is its own; cases are interleaved and repeated where they take
seconds; a scan of all pairs is first timed at 2,000-8,000 items, and where its n^2 growth says
it would take more than --limit-s at a size, that prediction stands for it (the table says so). Writes bench/results/grouping.json and .md.

    python bench/grouping.py [--sizes 100000,1000000] [--repeat 5] [--quick]
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness
from bench.peers.imagededup_import import phash_class

RADIUS = 8
MIN_COSINE = 0.9
K = 16
SEED = 5
TURNS = 7


# ---- the data ----

PHOTOS = (
    "astronaut", "camera", "chelsea", "coffee", "rocket", "grace_hopper", "stereo_motorcycle",
    "brick", "grass", "gravel", "coins", "moon", "hubble_deep_field", "immunohistochemistry",
    "retina", "clock", "cat", "text", "page", "horse", "logo", "microaneurysms",
)  # fmt: skip


def real_bit_rates() -> np.ndarray:
    """Each pHash bit's rate of being set over real photos: the sample photos and 9 crops of
    each (10-20% off a side), clipped to [0.02, 0.98]."""
    from busque.media.phash import hex_to_int64, phash_image

    codes = []
    for name in PHOTOS:
        image = harness.photo(name)
        w, h = image.size
        for left, top in ((0, 0), (0.1, 0), (0, 0.1), (0.1, 0.1), (0.2, 0), (0, 0.2), (0.2, 0.2),
                          (0.05, 0.15), (0.15, 0.05), (0.1, 0.2)):  # fmt: skip
            box = (int(left * w), int(top * h), w - int(left * w / 2), h - int(top * h / 2))
            codes.append(hex_to_int64(phash_image(image.crop(box))))
    bits = np.unpackbits(np.array(codes, np.int64).view(np.uint8).reshape(-1, 8), axis=1,
                         bitorder="little")  # fmt: skip
    return np.clip(bits.mean(axis=0), 0.02, 0.98)


def library(n: int, dim: int, rates: np.ndarray, seed: int = SEED) -> dict:
    """Codes (uint64) whose bits are set at the real rates, turns' codes (n x 7 uint64), unit
    vectors (n x dim float32); near and turned copies planted."""
    rng = np.random.default_rng(seed)
    skew = rates  # each bit's chance of being set
    bits = rng.random((n, 64)) < skew
    codes = np.packbits(bits, axis=1, bitorder="little").view("<u8").ravel().copy()
    turns = np.packbits(rng.random((n, TURNS, 64)) < skew, axis=2, bitorder="little")
    turns = turns.view("<u8").reshape(n, TURNS).copy()
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    # In order, so a source that is itself a copy is final before it is copied.
    copies = np.sort(rng.choice(np.arange(1, n), n // 10, replace=False))
    sources = rng.integers(0, copies, len(copies))  # each copies an earlier item
    near = set()
    for i, source in zip(copies.tolist(), sources.tolist(), strict=True):
        flips = rng.choice(64, int(rng.integers(0, 7)), replace=False)
        codes[i] = codes[source] ^ np.uint64(sum(1 << int(b) for b in flips))
        vectors[i] = vectors[source] + rng.normal(0, 0.1, dim).astype(np.float32)
        near.add((source, i))
    turned = set()
    for i in rng.choice(np.arange(1, n), n // 20, replace=False).tolist():
        source = int(rng.integers(0, i))
        one_bit = np.uint64(1 << int(rng.integers(64)))
        turns[i, int(rng.integers(0, TURNS))] = codes[source] ^ one_bit
        turned.add((source, i))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return {"codes": codes, "turns": turns, "vectors": vectors, "near": near, "turned": turned}


# ---- the methods (each runs in a child process) ----


def run_busque(data: dict, visual: bool) -> tuple[set, float]:
    from busque.index.duplicate_pairs import PairQuery, find_pairs
    from busque.index.hybrid import HybridIndex

    n, dim = data["vectors"].shape
    index = HybridIndex(dim)
    ids = np.arange(n, dtype=np.int64)
    index.add_many(ids, data["vectors"], data["codes"].view(np.int64))
    variants = dict(zip(ids.tolist(), data["turns"].view(np.int64).tolist(), strict=True))
    started = time.perf_counter()
    query = PairQuery(RADIUS, MIN_COSINE if visual else None, K)
    found = find_pairs(index, variants, query)
    return set(found), time.perf_counter() - started


def run_brute(data: dict, visual: bool) -> tuple[set, float]:
    codes, turns, vectors = data["codes"], data["turns"], data["vectors"]
    n = len(codes)
    block = max(1, 2**25 // (n * (1 + TURNS)))  # ~256 MiB of XORs at a time
    started = time.perf_counter()
    found = set()
    everything = np.concatenate([codes[:, None], turns], axis=1)  # n x 8
    for start in range(0, n, block):
        stop = min(n, start + block)
        # every code and turn of this block against every code
        near = np.bitwise_count(everything[start:stop, :, None] ^ codes[None, None, :])
        rows, _, cols = np.nonzero(near <= RADIUS)
        found |= _pairs(rows + start, cols)
        if visual:
            rows, cols = np.nonzero(vectors[start:stop] @ vectors.T >= MIN_COSINE)
            found |= _pairs(rows + start, cols)
    return found, time.perf_counter() - started


def _pairs(rows: np.ndarray, cols: np.ndarray) -> set[tuple[int, int]]:
    keep = rows != cols
    low, high = np.minimum(rows, cols)[keep], np.maximum(rows, cols)[keep]
    return set(zip(low.tolist(), high.tolist(), strict=True))


def run_imagededup(data: dict, visual: bool) -> tuple[set, float]:
    PHash = phash_class()
    encodings = {str(i): f"{int(c):016x}" for i, c in enumerate(data["codes"].tolist())}
    started = time.perf_counter()
    duplicates = PHash(verbose=False).find_duplicates(
        encoding_map=encodings, max_distance_threshold=RADIUS
    )
    pairs = {(min(int(a), int(b)), max(int(a), int(b))) for a, bs in duplicates.items() for b in bs}
    return pairs, time.perf_counter() - started


METHODS = {"busque": run_busque, "brute force": run_brute, "imagededup": run_imagededup}


def available() -> list[str]:
    """The methods this machine can run: imagededup only where it is installed (`pip install
    --no-deps imagededup==0.3.3.post2 scikit-learn PyWavelets`: its declared deps would pull
    torchvision, and with it a CUDA torch)."""
    import importlib.util

    needs = ("imagededup", "sklearn", "pywt")
    has_imagededup = all(importlib.util.find_spec(name) is not None for name in needs)
    return [m for m in METHODS if m != "imagededup" or has_imagededup]


def child(method: str, n: int, dim: int, visual: bool) -> None:
    """Build the data, run one method, print {pairs, seconds, peak_rss_mib}."""
    rates = np.array(json.loads(os.environ["GROUPING_BIT_RATES"]))
    data = library(n, dim, rates)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pairs, seconds = METHODS[method](data, visual)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    recall = {
        kind: round(len(planted & pairs) / max(1, len(planted)), 4)
        for kind, planted in (("near", data["near"]), ("turned", data["turned"]))
    }
    print(
        json.dumps(
            {"pairs": len(pairs), "seconds": seconds, "rss_mib": peak, "data_rss_mib": base,
             "recall": recall}
        )
    )  # fmt: skip


def in_child(
    method: str, n: int, dim: int, visual: bool, rates: np.ndarray, timeout: float
) -> dict | None:
    """One run in a process of its own (its peak RSS is its own); None past `timeout`."""
    command = [sys.executable, __file__, "--child", method, "--n", str(n), "--dim", str(dim)]
    if visual:
        command.append("--visual")
    env = {**os.environ, "GROUPING_BIT_RATES": json.dumps(rates.tolist())}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode:
        raise RuntimeError(f"{method} at {n}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- the runs ----


def measure(args, rates: np.ndarray) -> dict:
    """Per size and half (pHash only; pHash and embeddings): each method's runs, interleaved.
    A scan of all pairs is first timed at small sizes; where its n^2 growth says it would run
    past --limit-s, its time at that size is that prediction (the table says so)."""
    results: dict = {"sizes": {}, "extrapolated": {}}
    pilots: dict = {}
    for n in args.sizes:
        for visual in (False, True):
            label = f"{n}/{'visual' if visual else 'phash'}"
            methods = [m for m in available() if not (visual and m == "imagededup")]
            runs: dict[str, list] = {m: [] for m in methods}
            active = []
            for method in methods:
                if method != "busque":
                    if (method, visual) not in pilots:
                        pilots[(method, visual)] = pilot(method, visual, args, rates)
                    points, c = pilots[(method, visual)]
                    if c * n**2 > args.limit_s:
                        results["extrapolated"][f"{method}|{label}"] = {
                            "measured": points,
                            "predicted_s": c * n**2,
                        }
                        print(f"{label}: {method} predicted {c * n**2:,.0f} s", flush=True)
                        continue
                active.append(method)
            for _ in range(args.repeat):
                for method in list(active):  # A, B, C, A, B, C...
                    done = in_child(method, n, args.dim, visual, rates, args.limit_s * 2)
                    if done is None:
                        active.remove(method)
                        continue
                    runs[method].append(done)
                    print(f"{label}: {method} {done['seconds']:.2f} s", flush=True)
                    if done["seconds"] > args.limit_s / 4:
                        active.remove(method)  # one run says it; repeats would take too long
            results["sizes"][label] = runs
    return results


def pilot(method: str, visual: bool, args, rates) -> tuple[list, float]:
    """The method timed at 2,000, 4,000 and 8,000 items (--quick: 500 and 1,000); c of
    t = c * n^2 (their median)."""
    points = []
    for n in (500, 1000) if args.quick else (2000, 4000, 8000):
        done = in_child(method, n, args.dim, visual, rates, args.limit_s)
        if done is None:
            break
        points.append((n, done["seconds"]))
    if not points:
        return [], float("inf")
    return points, statistics.median(t / n**2 for n, t in points)


def verdicts(results: dict) -> str:
    """Per size and half: busque's median against the fastest other method's (measured, or
    its n^2 prediction where it was not run), and the peak memory of each."""
    lines = [
        "## busque against the fastest other method",
        "",
        "| items | search | busque s | fastest other | its s | busque's speedup | "
        "peak RSS MiB, busque / other |",
        "|---:|---|---:|---|---:|---:|---:|",
    ]
    for label, runs in results["sizes"].items():
        n, half = label.split("/")
        if not runs.get("busque"):
            continue
        ours = statistics.median(d["seconds"] for d in runs["busque"])
        others = {}
        for method, done in runs.items():
            if method == "busque":
                continue
            if done:
                rss = max(d["rss_mib"] for d in done)
                others[method] = (statistics.median(d["seconds"] for d in done), "", rss)
            elif guess := results["extrapolated"].get(f"{method}|{label}"):
                others[method] = (guess["predicted_s"], "~", None)
        if not others:
            continue
        method, (theirs, approx, rss) = min(others.items(), key=lambda kv: kv[1][0])
        ours_rss = max(d["rss_mib"] for d in runs["busque"])
        memory = f"{ours_rss:.0f} / {rss:.0f}" if rss else f"{ours_rss:.0f} / not run"
        verdict = "ahead" if ours < theirs else "**behind**"
        lines.append(
            f"| {int(n):,} | {'pHash' if half == 'phash' else 'pHash + embeddings'} | "
            f"{ours:.2f} | {method} | {approx}{theirs:,.2f} | {approx}{theirs / ours:,.1f}x "
            f"({verdict}) | {memory} |"
        )
    lines += [
        "",
        "A `~` is a prediction: that method was timed at 2,000-8,000 items and its n^2 growth "
        "put it past --limit-s at that size. Every run's pairs and recall are below.",
    ]
    return "\n".join(lines)


def table(results: dict, args) -> str:
    lines = []
    for label, runs in results["sizes"].items():
        n, half = label.split("/")
        lines += [
            f"### {int(n):,} items, {'pHash (codes and 7 turns)' if half == 'phash' else 'pHash and embeddings'}",
            "",
            "| method | runs | median s | interval s (level) | pairs | recall: near copies | recall: turned | peak RSS MiB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for method, done in runs.items():
            key = f"{method}|{label}"
            if not done:
                guess = results["extrapolated"].get(key)
                if guess:
                    points = ", ".join(f"{m:,}: {t:.1f} s" for m, t in guess["measured"])
                    lines.append(
                        f"| {method} | 0 | ~{guess['predicted_s']:,.0f} (extrapolated, n^2 from "
                        f"{points}) | | | | | |"
                    )
                continue
            interval = harness.median_interval([d["seconds"] for d in done])
            pairs = sorted({d["pairs"] for d in done})
            rss = max(d["rss_mib"] for d in done)
            recall = done[0]["recall"]
            lines.append(
                f"| {method} | {len(done)} | {interval['median']:.2f} | "
                f"{interval['low']:.2f}-{interval['high']:.2f} ({interval['level']:.0%}) | "
                f"{', '.join(map(str, pairs))} | {recall['near']:.1%} | {recall['turned']:.1%} | "
                f"{rss:.0f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    cli = harness.parser(__doc__)
    cli.add_argument("--sizes", default="100000,1000000", help="library sizes, comma-separated")
    cli.add_argument("--repeat", type=int, default=5, help="runs of each method per size")
    cli.add_argument("--dim", type=int, default=128, help="embedding dimensions")
    cli.add_argument(
        "--limit-s",
        type=float,
        default=600,
        help="a baseline predicted past this is not run (its prediction is shown)",
    )
    cli.add_argument("--quick", action="store_true", help="2,000 items, 2 runs (a smoke test)")
    args = cli.parse_args()
    args.sizes = [int(n) for n in args.sizes.split(",")]
    if args.quick:
        args.sizes, args.repeat, args.limit_s = [2_000], 2, 120
    rates = real_bit_rates()
    results = measure(args, rates)
    command = "python bench/grouping.py " + " ".join(sys.argv[1:])
    load = os.getloadavg()
    markdown = "\n".join(
        [
            "# Grouping a library into duplicate pairs",
            "",
            f"pHash radius {RADIUS} (each code and its 7 turns against every code), embeddings "
            f"of {args.dim} dimensions at cosine >= {MIN_COSINE} (busque: among each item's "
            f"{K} nearest; brute force: every pair). Bits set at the rates of real photos' "
            "pHashes; a tenth near copies, a twentieth turned copies. imagededup: codes only "
            "(no turns: it has none), its documented call.",
            "",
            verdicts(results),
            "",
            table(results, args),
        ]
    )
    harness.write_results(
        "grouping",
        {"command": command, "machine": harness.machine(load_average=load), **results,
         "bit_rates": rates.tolist(), "args": {k: v for k, v in vars(args).items()}},
        markdown,
        write=not args.no_write and not args.quick,
    )  # fmt: skip


if __name__ == "__main__":
    if "--child" in sys.argv:
        argv = sys.argv
        child(argv[argv.index("--child") + 1], int(argv[argv.index("--n") + 1]),
              int(argv[argv.index("--dim") + 1]), "--visual" in argv)  # fmt: skip
    else:
        main()
