"""Near-duplicate lookup benchmark: every stored 64-bit pHash within Hamming distance 8 of a
query, single-threaded, at 20k to 10M codes, on codes that are not all uniform.

The methods, each built on the same codes and asked the same queries:
- busque's PhashIndex: multi-index hashing, 3 substrings (22/21/21 bits), radius 2 in each;
- a numpy XOR-popcount scan (the exact answer every method is scored against);
- FAISS IndexBinaryFlat.range_search; FAISS IndexBinaryMultiHash (FAISS's own multi-index
  hashing: 3 tables of 21 bits, nflip=2, exact by the same pigeonhole); FAISS IndexBinaryHash
  (one 16-bit table, nflip=8: every bucket within 8 bits, exact);
- imagededup as its own code searches (imagededup.handlers.search: its default on Linux,
  `brute_force_cython`, which turns the whole hash dict into lists on every query, and its
  `bktree`, with imagededup's Hashing.hamming_distance), and pybktree (a BK-tree users pick;
  imagededup does not use it). These are pure Python or rebuild per query, so they run at the
  smaller sizes only, with fewer queries: every row names its own N and query count.

The codes: (1) real pHashes, busque's of every real photo available offline (scikit-image's
and matplotlib's sample photos, with turns, mirrors, crops, re-saves, tone changes and blur of
each; scikit-image's 200 LFW faces; the frames of its GIF; panning "video" frames made as
tests/video_files.py makes them), queried with 100 of themselves; (2) "skewed": codes drawn from
a Gaussian copula fitted to the real ones (each bit's rate and the bits' correlations; pHash's
median threshold keeps real codes nearly balanced, so this comes out close to uniform);
(3) "clustered": each code a real one with every bit flipped with probability 0.2, a library of
bursts, series and one scene shot many times, which crowds the substrings multi-index hashing
looks up (its hard case); (4) uniform random codes, its best case. Skewed, clustered and
uniform queries come from the same distribution, each with one planted code at distance 1..8.

Timing: methods interleaved round by round (the order turns each round), each round every
query once; ms/query is the median round's mean with a distribution-free interval, p50/p99 pool
every query of every round, and busque's speedup over each method is paired by round, read as
ahead, level or behind. Recall is against the exact scan, every neighbour counted. Writes
bench/results/phash_lookup.json, .md and .png.

    python bench/phash_lookup.py            # about 8 minutes on 2 cores (estimated), a few GB
    python bench/phash_lookup.py --quick    # seconds: 2,000 and 20,000 codes, writes nothing
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import gc  # noqa: E402
import importlib.util  # noqa: E402
import io  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import faiss  # noqa: E402
import numpy as np  # noqa: E402
import pybktree  # noqa: E402
from PIL import Image, ImageEnhance, ImageFilter, ImageOps  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness  # noqa: E402
from bench.peers.imagededup_import import prepare as prepare_imagededup  # noqa: E402
from busque.index.phash_index import PhashIndex  # noqa: E402
from busque.media.phash import phash_bytes  # noqa: E402

RADIUS = 8
SEED = 21
REAL_PHOTOS = (
    "astronaut", "camera", "chelsea", "coffee", "rocket", "grace_hopper", "stereo_motorcycle",
    "brick", "grass", "gravel", "coins", "moon", "hubble_deep_field", "immunohistochemistry",
    "retina", "clock", "cat", "text", "page", "horse", "logo", "microaneurysms", "cell",
    "motorcycle_right",
)  # fmt: skip
PAN_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "retina")
SIZES = (20_000, 200_000, 1_000_000, 10_000_000)
QUICK_SIZES = (2_000, 20_000)
KINDS = ("clustered", "skewed", "uniform")
# Each clustered code is a real one with each bit flipped at this rate: 12.8 bits from its
# centre, two codes of one cluster 20 apart; ~10,000 relatives per real photo at 10M codes.
CLUSTER_FLIP = 0.2
FLOORS_MS = {1_000_000: 1.0, 10_000_000: 5.0}  # busque's ms/query, recall 100%


# ---- the codes ----


def _load(name: str) -> Image.Image:
    if name == "motorcycle_right":  # the stereo pair's other view: a different photo
        import skimage.data

        return Image.fromarray(skimage.data.stereo_motorcycle()[1]).convert("RGB")
    return harness.photo(name)


def _crop(im: Image.Image, share: float, anchor: float) -> Image.Image:
    dx, dy = int(im.width * share), int(im.height * share)
    left, top = int(dx * anchor), int(dy * anchor)
    return im.crop((left, top, im.width - dx + left, im.height - dy + top))


def _resave(im: Image.Image, quality: int, scale: float = 1.0) -> Image.Image:
    if scale != 1.0:
        im = im.resize((max(8, int(im.width * scale)), max(8, int(im.height * scale))))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=quality)
    return Image.open(io.BytesIO(out.getvalue()))


EDITS = {
    "original": lambda im: im,
    "rot90": lambda im: im.transpose(Image.Transpose.ROTATE_90),
    "rot180": lambda im: im.transpose(Image.Transpose.ROTATE_180),
    "rot270": lambda im: im.transpose(Image.Transpose.ROTATE_270),
    "mirror": ImageOps.mirror,
    "grey": lambda im: ImageOps.grayscale(im).convert("RGB"),
    **{
        f"crop_{int(share * 100)}_{anchor}": (lambda im, s=share, a=anchor: _crop(im, s, a))
        for share in (0.05, 0.1, 0.2, 0.3)
        for anchor in (0.0, 0.5, 1.0)
    },
    **{f"resave_q{q}": (lambda im, q=q: _resave(im, q)) for q in (20, 50, 80)},
    **{f"half_q{q}": (lambda im, q=q: _resave(im, q, 0.5)) for q in (40, 85)},
    "darker": lambda im: ImageEnhance.Brightness(im).enhance(0.8),
    "brighter": lambda im: ImageEnhance.Brightness(im).enhance(1.25),
    "contrast": lambda im: ImageEnhance.Contrast(im).enhance(1.3),
    "blur": lambda im: im.filter(ImageFilter.GaussianBlur(2)),
}


def real_images(quick: bool):
    """(source, edit, image) of every real photo available offline and its edits, the LFW
    faces, the GIF's frames and panning frames."""
    import skimage.data

    photos = REAL_PHOTOS[:3] if quick else REAL_PHOTOS
    edits = dict(list(EDITS.items())[:6]) if quick else EDITS
    for name in photos:
        im = _load(name)
        for edit, fn in edits.items():
            yield name, edit, fn(im).convert("RGB")
    faces = skimage.data.lfw_subset()[: 20 if quick else None]
    for i, face in enumerate(faces):
        yield f"lfw_{i}", "original", Image.fromarray((face * 255).astype(np.uint8)).convert("RGB")
    gif = Path(skimage.data.__file__).parent / "no_time_for_that_tiny.gif"
    with Image.open(gif) as frames:
        for i in range(frames.n_frames):
            frames.seek(i)
            yield "gif", f"frame_{i}", frames.convert("RGB")
    from tests.video_files import _pan  # the video tests' frames: a pan and zoom over a photo

    for name in PAN_PHOTOS[:1] if quick else PAN_PHOTOS:
        for i, frame in enumerate(_pan(harness.photo(name), 30, (320, 240))):
            yield f"pan_{name}", f"frame_{i}", frame


def real_codes(quick: bool) -> np.ndarray:
    """busque's pHash (fast mode, from a quality-90 JPEG, as ingest sees a file) of every real
    image, as uint64."""
    from tqdm import tqdm

    codes = []
    for _, _, im in tqdm(real_images(quick), desc="real pHashes", leave=False):
        out = io.BytesIO()
        im.save(out, "JPEG", quality=90)
        codes.append(int(phash_bytes(out.getvalue()), 16))
    return np.array(codes, dtype=np.uint64)


def _bits(codes: np.ndarray) -> np.ndarray:
    return np.unpackbits(codes.astype(">u8").view(np.uint8).reshape(-1, 8), axis=1)


class Copula:
    """A Gaussian copula over 64 bits fitted to real codes: each bit set at its real rate, the
    latent correlations from the bits' phi coefficients (Sheppard: rho = sin(pi/2 * phi)),
    made positive definite."""

    def __init__(self, codes: np.ndarray):
        from scipy.stats import norm

        bits = _bits(codes).astype(np.float64)
        n = len(bits)
        rates = np.clip(bits.mean(axis=0), 0.5 / n, 1 - 0.5 / n)
        self.thresholds = norm.ppf(1 - rates).astype(np.float32)
        spread = bits.std(axis=0)
        live = spread > 0
        phi = np.zeros((64, 64))
        phi[np.ix_(live, live)] = np.corrcoef(bits[:, live], rowvar=False)
        rho = np.sin(np.pi / 2 * phi)
        np.fill_diagonal(rho, 1.0)
        values, vectors = np.linalg.eigh(rho)
        rho = (vectors * np.clip(values, 1e-3, None)) @ vectors.T
        scale = np.sqrt(np.diag(rho))
        rho = rho / scale[:, None] / scale[None, :]
        self.lower = np.linalg.cholesky(rho).astype(np.float32)
        self.rates = rates

    def sample(self, n: int, rng: np.random.Generator, chunk: int = 1_000_000) -> np.ndarray:
        out = np.empty(n, dtype=np.uint64)
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            z = rng.standard_normal((m, 64), dtype=np.float32) @ self.lower.T
            packed = np.packbits(z > self.thresholds, axis=1)
            out[start : start + m] = packed.view(">u8").ravel()
        return out


def clustered(real: np.ndarray, n: int, rng: np.random.Generator, chunk: int = 1_000_000):
    """n codes, each a random real code with every bit flipped with probability CLUSTER_FLIP."""
    out = np.empty(n, dtype=np.uint64)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        flips = np.packbits(rng.random((m, 64), dtype=np.float32) < CLUSTER_FLIP, axis=1)
        out[start : start + m] = real[rng.integers(0, len(real), m)] ^ flips.view(">u8").ravel()
    return out


def plant(codes: np.ndarray, queries: np.ndarray, rng: np.random.Generator) -> None:
    """For each query, one stored code at distance 1..8 (cycling) at a random position."""
    where = rng.choice(len(codes), len(queries), replace=False)
    for qi, q in enumerate(queries):
        bits = rng.choice(64, 1 + qi % RADIUS, replace=False)
        codes[where[qi]] = q ^ np.uint64(sum(1 << int(b) for b in bits))


def dataset(kind: str, n: int, n_queries: int, real: np.ndarray, copula: Copula):
    """(codes, queries) of a kind: "real" (n ignored: every real code, queried with a sample of
    them), "skewed" (from the copula), "clustered" (around the real codes) or "uniform"."""
    rng = np.random.default_rng([SEED, n])
    if kind == "real":
        return real.copy(), real[rng.choice(len(real), min(n_queries, len(real)), replace=False)]
    if kind == "skewed":
        codes, queries = copula.sample(n, rng), copula.sample(n_queries, rng)
    elif kind == "clustered":
        codes, queries = clustered(real, n, rng), clustered(real, n_queries, rng)
    else:
        codes = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
        queries = rng.integers(0, 2**64, n_queries, dtype=np.uint64, endpoint=False)
    plant(codes, queries, rng)
    return codes, queries


def mean_distance(codes: np.ndarray, rng: np.random.Generator, pairs: int = 20_000) -> float:
    a, b = rng.integers(0, len(codes), (2, pairs))
    return float(np.bitwise_count(codes[a] ^ codes[b]).mean())


# ---- the methods: build(codes) -> search(query as uint64) -> ids ----


def build_busque(codes):
    index = PhashIndex()
    index.add(np.arange(len(codes), dtype=np.int64), codes)
    return lambda q: [i for i, _ in index.search_radius(q, RADIUS)], index.nbytes()


def build_scan(codes):
    return lambda q: np.flatnonzero(np.bitwise_count(codes ^ q) <= RADIUS).tolist(), 0


def _faiss_range(index, codes):
    """FAISS's binary range_search keeps distances < radius, so it is asked for RADIUS + 1."""
    index.add(codes.astype(">u8").view(np.uint8).reshape(len(codes), 8))

    def search(q):
        row = np.array([q], dtype=">u8").view(np.uint8).reshape(1, 8)
        _, _, labels = index.range_search(row, RADIUS + 1)
        return labels.tolist()

    return search, None


def build_faiss_flat(codes):
    return _faiss_range(faiss.IndexBinaryFlat(64), codes)


def build_faiss_multihash(codes):
    index = faiss.IndexBinaryMultiHash(64, 3, 21)  # d, nhash, b: 63 of the 64 bits in 3 tables
    index.nflip = 2  # 8 bits over 3 tables: one table is within 2 (pigeonhole), so exact
    return _faiss_range(index, codes)


def build_faiss_hash(codes):
    index = faiss.IndexBinaryHash(64, 16)  # d, b: one table on 16 bits
    index.nflip = 8  # every bucket within 8 bits of the query's: exact
    return _faiss_range(index, codes)


def _imagededup():
    prepare_imagededup()
    from imagededup.handlers.search.bktree import BKTree
    from imagededup.handlers.search.brute_force_cython import BruteForceCython
    from imagededup.methods.hashing import Hashing

    return BKTree, BruteForceCython, Hashing.hamming_distance


def _hex_dict(codes) -> dict[str, str]:
    return {str(i): f"{int(c):016x}" for i, c in enumerate(codes.tolist())}


def build_imagededup_cython(codes):
    _, brute, distance = _imagededup()
    searcher = brute(_hex_dict(codes), distance)
    return lambda q: [int(name) for name, _ in searcher.search(f"{int(q):016x}", RADIUS)], None


def build_imagededup_bktree(codes):
    bktree, _, distance = _imagededup()
    tree = bktree(_hex_dict(codes), distance)
    return lambda q: [int(name) for name, _ in tree.search(f"{int(q):016x}", RADIUS)], None


def build_pybktree(codes):
    tree = pybktree.BKTree(lambda a, b: (a[1] ^ b[1]).bit_count(), list(enumerate(codes.tolist())))
    return lambda q: [item[0] for _, item in tree.find((-1, int(q)), RADIUS)], None


# name -> (build, largest N it runs at, the most queries it is asked, what it is)
METHODS = {
    "busque PhashIndex": (build_busque, None, None, "multi-index hashing, 22/21/21 bits x radius 2"),
    "numpy XOR-popcount scan": (build_scan, None, None, "the exact answer"),
    "faiss IndexBinaryFlat": (build_faiss_flat, None, None, "range_search, a scan in C++"),
    "faiss IndexBinaryMultiHash": (build_faiss_multihash, None, None, "nhash=3, b=21, nflip=2"),
    "faiss IndexBinaryHash": (build_faiss_hash, None, 20, "b=16, nflip=8; 2**16 probes"),
    "imagededup brute_force_cython": (
        build_imagededup_cython, 200_000, 20, "its default search on Linux, one worker"),
    "imagededup bktree": (build_imagededup_bktree, 20_000, 20, "its BKTree, its hamming_distance"),
    "pybktree": (build_pybktree, 200_000, 20, "pure Python BK-tree"),
}  # fmt: skip


IMAGEDEDUP = importlib.util.find_spec("imagededup") is not None  # optional (README: Benchmarks)


def runnable() -> dict:
    """The methods this machine can run: imagededup's only where it is installed."""
    return {n: m for n, m in METHODS.items() if IMAGEDEDUP or not n.startswith("imagededup")}


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_dataset(kind: str, codes, queries, repeats: int, quick: bool) -> dict:
    n = len(codes)
    truth = [set(np.flatnonzero(np.bitwise_count(codes ^ q) <= RADIUS).tolist()) for q in queries]
    rng = np.random.default_rng(SEED)
    out: dict = {
        "codes": kind,
        "n": n,
        "queries": len(queries),
        "neighbours_per_query": round(sum(map(len, truth)) / len(truth), 2),
        "mean_pair_distance": round(mean_distance(codes, rng), 2),
        "methods": {},
    }
    searchers, found, latencies = {}, {}, {}
    for name, (build, max_n, max_q, what) in runnable().items():
        if max_n is not None and n > (max_n // 10 if quick else max_n):
            continue
        gc.collect()
        started = time.perf_counter()
        search, nbytes = build(codes)
        build_s = time.perf_counter() - started
        qs = queries[: max_q // 4 if quick and max_q else max_q]
        searchers[name] = (search, qs)
        out["methods"][name] = {"n": n, "queries": len(qs), "build_s": round(build_s, 2)}
        out["methods"][name]["what"] = what
        if nbytes:
            out["methods"][name]["index_mib"] = round(nbytes / 2**20, 1)
        latencies[name] = []

    def case(name):
        search, qs = searchers[name]

        def run():
            results = []
            for q in qs:
                started = time.perf_counter()
                results.append(search(q))
                latencies[name].append(time.perf_counter() - started)
            found[name] = results

        return run

    samples = harness.interleaved(
        {name: case(name) for name in searchers}, repeats, desc=f"{kind} {n:,}"
    )
    busque = samples["busque PhashIndex"]["wall_s"]
    for name, s in samples.items():
        m = out["methods"][name]
        per_query = 1000 / m["queries"]
        timed = latencies[name][m["queries"] :]  # past the warm-up round
        hits = sum(len(set(r) & t) for r, t in zip(found[name], truth, strict=False))
        wanted = sum(len(t) for t in truth[: m["queries"]])
        busque_same = [b / len(queries) * m["queries"] for b in busque]  # same query count
        ratio = harness.scaled(harness.ratio_interval(s["wall_s"], busque_same), 1)
        m.update(
            ms_per_query=harness.scaled(harness.median_interval(s["wall_s"]), per_query, 4),
            p50_ms=round(float(np.percentile(timed, 50)) * 1000, 4),
            p99_ms=round(float(np.percentile(timed, 99)) * 1000, 4),
            recall=hits / wanted if wanted else 1.0,
            exact=all(set(r) == t for r, t in zip(found[name], truth, strict=False)),
            busque_speedup={**ratio, "verdict": harness.verdict(ratio)},
        )
    out["max_rss_mib"] = round(rss_mib(), 1)
    return out


# ---- the run ----


def machine() -> dict:
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return harness.machine(
        host=platform.node(),
        memory_gib=mem,
        numpy=np.__version__,
        faiss=faiss.__version__,
        pybktree=getattr(pybktree, "__version__", "1.1"),
        threads=1,
    )


def floors(results: dict) -> list[dict]:
    out = []
    for size in results["datasets"]:
        limit = FLOORS_MS.get(size["n"])
        if limit is None or size["codes"] == "real":
            continue
        b = size["methods"]["busque PhashIndex"]
        ms = b["ms_per_query"]
        out.append(
            {
                "what": f"busque <= {limit} ms/query at {size['n']:,} {size['codes']} codes, "
                "recall 100%",
                "value": f"{harness.show(ms, 4)} ms, recall {b['recall']:.0%}",
                "pass": harness.meets(ms, limit, higher_is_better=False) and b["exact"],
            }
        )
    return out


def main() -> None:
    ap = harness.parser(__doc__)
    ap.add_argument(
        "--sizes",
        default=",".join(map(str, SIZES)),
        help="codes per skewed and uniform set (default %(default)s)",
    )
    ap.add_argument("--queries", type=int, default=100, help="queries per set (default 100)")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved rounds, >= 5")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="2,000 and 20,000 codes, 20 queries, a few real photos: a smoke test; writes nothing",
    )
    args = ap.parse_args()
    faiss.omp_set_num_threads(1)
    sizes = QUICK_SIZES if args.quick else [int(s) for s in args.sizes.split(",")]
    n_queries = 20 if args.quick else args.queries

    real = real_codes(args.quick)
    copula = Copula(real)
    results = {
        "benchmark": "phash_lookup",
        "machine": machine(),
        "radius": RADIUS,
        "repeats": args.repeats,
        "real_codes": len(real),
        "real_bit_rates": [round(float(r), 3) for r in copula.rates],
        "datasets": [],
        "skipped": sorted(set(METHODS) - set(runnable())),
    }
    if results["skipped"]:
        print("skipped (not installed):", ", ".join(results["skipped"]), flush=True)
    plan = [("real", len(real))] + [(k, n) for n in sizes for k in KINDS]
    for kind, n in plan:
        codes, queries = dataset(kind, n, n_queries, real, copula)
        size = bench_dataset(kind, codes, queries, args.repeats, args.quick)
        del codes
        print(f"{kind} {n:,}: {size['neighbours_per_query']} neighbours/query", flush=True)
        for name, s in size["methods"].items():
            print(f"  {name}: {harness.show(s['ms_per_query'], 4)} ms recall {s['recall']:.0%}")
        results["datasets"].append(size)
    results["floors"] = floors(results)
    results["pass"] = all(f["pass"] for f in results["floors"])
    harness.publish("phash_lookup", results, markdown(results), args, plot)


# ---- the report ----


def plot(results: dict, path: Path) -> None:
    """ms/query against N, log-log, one line per method, one panel per kind of codes."""
    plt = harness.pyplot()

    fig, axes = plt.subplots(1, len(KINDS), figsize=(6 * len(KINDS), 4.8), sharey=True)
    for ax, kind in zip(axes, KINDS, strict=True):
        for name in METHODS:
            points = [
                (d["n"], d["methods"][name]["ms_per_query"])
                for d in results["datasets"]
                if d["codes"] == kind and name in d["methods"]
            ]
            if not points:
                continue
            ns = [p[0] for p in points]
            mid = [p[1]["median"] for p in points]
            err = [[m - p[1]["low"] for m, p in zip(mid, points, strict=True)],
                   [p[1]["high"] - m for m, p in zip(mid, points, strict=True)]]  # fmt: skip
            style = {"linewidth": 3, "color": "black"} if name.startswith("busque") else {}
            ax.errorbar(ns, mid, yerr=err, marker="o", capsize=3, label=name, **style)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{kind} codes, radius {RADIUS}")
        ax.set_xlabel("stored codes")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("ms per query (median round, interval), lower is better")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown(results: dict) -> str:
    m = results["machine"]
    level = results["datasets"][0]["methods"]["busque PhashIndex"]["ms_per_query"]["level"]
    lines = [
        f"# Near-duplicate lookup, radius {RADIUS}, single thread",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB (host {m['host']}); "
        f"Python {m['python']}, numpy {m['numpy']}, faiss {m['faiss']}. "
        f"{results['repeats']} interleaved rounds; ms/query is the median round's mean with its "
        f"{level:.1%} distribution-free interval [low, high]; p50/p99 pool every timed query. "
        "`busque x faster` is per round (paired), and busque is ahead, level or behind as the "
        "whole interval says. Recall is against the exact scan, every neighbour counted.",
        "",
        f"Codes: **real** ({results['real_codes']:,} pHashes busque computes for the real photos "
        "available offline, with edits, faces and video frames, queried with a sample of "
        "themselves), **skewed** (drawn from a Gaussian copula fitted to the real ones: their "
        "per-bit rates and bit correlations; pHash's median threshold keeps real codes nearly "
        "balanced, so this is close to uniform), **clustered** (each code a real one with every "
        f"bit flipped with probability {CLUSTER_FLIP}: a library of bursts, series and one "
        "scene shot many times, where the substrings multi-index hashing looks up are crowded: "
        "the hard case for it) and **uniform** (random bits, the best case for multi-index "
        "hashing). Skewed, clustered and uniform queries come from the same distribution, each "
        "with one planted code at distance 1..8. The mean distance between two stored codes "
        "says how crowded a set is (32 for uniform).",
        "",
        "![ms per query by N](phash_lookup.png)",
        "",
    ]
    if results.get("skipped"):
        lines += [f"Not run (not installed here): {', '.join(results['skipped'])}.", ""]
    for size in results["datasets"]:
        lines += [
            f"## {size['codes']} codes, {size['n']:,}",
            "",
            f"{size['neighbours_per_query']} neighbours per query within {RADIUS} bits; mean "
            f"distance between two codes {size['mean_pair_distance']}.",
            "",
            "| method | N | queries | ms/query [interval] | p50 ms | p99 ms | build s | recall |"
            " exact | busque x faster [interval] | busque is | note |",
            "|---|---:|---:|---|---:|---:|---:|---:|---|---|---|---|",
        ]
        for name, s in size["methods"].items():
            note = s["what"] + (f"; index {s['index_mib']} MiB" if "index_mib" in s else "")
            ratio = s["busque_speedup"]
            against = ("", "") if name.startswith("busque") else (
                harness.show(ratio), f"**{ratio['verdict']}**")  # fmt: skip
            lines.append(
                f"| {name} | {s['n']:,} | {s['queries']} | {harness.show(s['ms_per_query'], 4)} "
                f"| {s['p50_ms']} | {s['p99_ms']} | {s['build_s']} | {s['recall']:.1%} | "
                f"{'yes' if s['exact'] else 'NO'} | {against[0]} | {against[1]} | {note} |"
            )
        lines += ["", f"Peak RSS after this set: {size['max_rss_mib']} MiB.", ""]
    lines += ["## Floors (met only when the whole interval clears them)", ""]
    for f in results["floors"]:
        lines.append(f"- {f['what']}: {f['value']} -> {'PASS' if f['pass'] else 'FAIL'}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
