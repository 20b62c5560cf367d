"""Vector search: busque's default index against the FAISS indexes a user would pick, recall@10
and one-query latency side by side, at 1,000,000 vectors and on data whose clusters do not line
up with anyone's IVF lists.

busque's index is what a Matcher builds with no settings: `VectorIndex(1280)` ("auto": exact
IndexFlatIP up to 20,000 vectors, then HNSW with M=32, efConstruction 80, efSearch 128, float32
storage), filled chunk by chunk as a Matcher is. The peers, each built from the same chunks:
- faiss `IndexFlatIP`: exact (at 1M its scan is the one over busque's HNSW storage, an
  IndexFlat with METRIC_INNER_PRODUCT, the same code: 5 GB is not held twice);
- faiss `IndexIVFFlat`, nlist = 4*sqrt(N) (the low end of faiss's guideline 4..16*sqrt(N)),
  trained as its docs show (`train` on the first 40*nlist vectors, faiss's default 25 k-means
  iterations), nprobe tuned;
- faiss `IndexHNSWFlat(d, 32)` at faiss's documented defaults (efConstruction 40), efSearch
  tuned; at 1M only with `--large-peers ivf,hnsw` (its build is another ~6 minutes on 2 cores;
  the 30k sets always have it).
Tuning is fair and held out: queries are split in two; on the tuning half each peer takes the
smallest nprobe / efSearch whose recall@10 reaches busque's (sweep curves in the plot), and every
figure reported is from the other half. Recall@10 is against numpy's exact product (ties
counted), with busque's gain over each peer paired by query (95% bootstrap interval). Latency is
one query per call on one thread; the methods take turns in interleaved rounds (A, B, C, A, ...,
>= 5 repetitions after a warm-up round), p50 and p99 per round, medians with distribution-free
intervals over the rounds; busque is ahead / level / behind each peer as the interval of the
paired per-round p50 ratio says. Builds (all cores) are measured once per run, and said so.

Data (vectors L2-normalised, queries fresh draws from the same distribution):
- synthetic, 1280-d (EfficientNet-Lite0's width, busque's default embedder): cluster sizes
  Zipf-skewed (the largest of 5000 clusters holds ~11%), each cluster stretched differently
  along a shared 32-d latent subspace (anisotropic, its spread varying per cluster), plus
  isotropic noise; 300 and 5000 clusters, neither a match for the nlist any size gives;
- real: busque's embedder's vectors of every real image available offline (bench/phash_lookup's
  set: sample photos and their edits, LFW faces, GIF and panning-video frames; ~1,050), where
  busque's default is exact, so its HNSW (`kind="hnsw"`) is checked for recall there too.

Writes bench/results/vector_search.json, .md and .png (recall against latency).

    python bench/vector_search.py    # ~15-20 min on 2 quiet cores (estimated: builds measured
                                     # at 100k, x12 for 1M), ~11 GiB of memory
    python bench/vector_search.py --large-peers ivf,hnsw   # faiss's HNSW at 1M too: ~6 min
                                     # more, ~16 GiB
    python bench/vector_search.py --n 200000 # all of it at 200k (a few minutes)
    python bench/vector_search.py --quick    # seconds: 24k vectors at 128-d, writes nothing
"""

from __future__ import annotations

# BLAS keeps its default threads (all cores): IVF training and adding run through it, as a
# user's would; one-query searches never reach BLAS (FAISS uses it from 20 queries a call).
import math
import os
import resource
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness
from busque.index.vector_index import VectorIndex, VectorIndexConfig

K = 10
LATENT = 32
NPROBES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
EF_SEARCHES = (10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
BUSQUE = "busque default"
FLAT, IVF, HNSW = "faiss IndexFlatIP (exact)", "faiss IndexIVFFlat", "faiss IndexHNSWFlat"
VERDICT_WORDS = {"ahead": "**ahead**", "level": "**level**", "behind": "**behind**"}


# ---- the data ----


class Synthetic:
    """Clustered unit vectors that can say no: `clusters` random unit centres with Zipf(`skew`)
    sizes; a vector is its centre + a draw of a shared 32-d latent subspace scaled per cluster
    and per direction (each cluster its own shape and spread) + 0.3 * isotropic noise,
    L2-normalised. Chunks are deterministic in (seed, stream, chunk number)."""

    def __init__(self, dim: int, clusters: int, skew: float = 1.0, seed: int = 0) -> None:
        rng = np.random.default_rng((seed, clusters))
        self.dim, self.clusters, self.skew, self.seed = dim, clusters, skew, seed
        c = rng.standard_normal((clusters, dim)).astype(np.float32)
        self.centres = c / np.linalg.norm(c, axis=1, keepdims=True)
        b = rng.standard_normal((LATENT, dim)).astype(np.float32)
        self.basis = b / np.linalg.norm(b, axis=1, keepdims=True)
        # per cluster: an overall spread (0.3..1.0) times a shape over the latent directions
        spread = np.exp(rng.uniform(np.log(0.3), np.log(1.0), (clusters, 1)))
        shape = np.exp(rng.normal(0, 0.7, (clusters, LATENT)))
        self.scales = (spread * shape / np.sqrt(LATENT)).astype(np.float32)
        weights = 1.0 / np.arange(1, clusters + 1) ** skew
        self.p = weights / weights.sum()

    @property
    def label(self) -> str:
        return f"{self.clusters} clusters, Zipf({self.skew:g}) sizes, anisotropic, {self.dim}-d"

    @property
    def short(self) -> str:
        return f"{self.clusters} clusters"

    def chunk(self, i: int, n: int, stream: int = 1) -> np.ndarray:
        rng = np.random.default_rng((self.seed, self.clusters, stream, i))
        k = rng.choice(self.clusters, n, p=self.p)
        z = rng.standard_normal((n, LATENT), dtype=np.float32) * self.scales[k]
        x = np.empty((n, self.dim), dtype=np.float32)
        for start in range(0, n, 4096):  # in blocks: small temporaries, written in place
            block = x[start : start + 4096]
            rng.standard_normal(dtype=np.float32, out=block)
            block *= 0.3 / np.sqrt(self.dim)
            block += self.centres[k[start : start + 4096]]
            block += z[start : start + 4096] @ self.basis
            block /= np.linalg.norm(block, axis=1, keepdims=True)
        return x

    def chunks(self, n: int, size: int):
        """(first id, vectors) of the base set, `size` at a time."""
        for i, start in enumerate(range(0, n, size)):
            yield start, self.chunk(i, min(size, n - start))

    def queries(self, n: int) -> np.ndarray:
        return self.chunk(0, n, stream=2)


class Real:
    """busque's embedder's vectors of every real image available offline (held-out queries
    taken from them)."""

    def __init__(self, quick: bool, queries: int) -> None:
        import torch
        from tqdm import tqdm

        from bench.phash_lookup import real_images
        from busque.models.embedding.efficientnet import EfficientNetLite0Embedder

        torch.set_num_threads(os.cpu_count() or 1)
        model = EfficientNetLite0Embedder(device="cpu", batch_size=16)
        model.load()
        images = [im for _, _, im in real_images(quick)]
        vectors = [
            model.embed_images(images[i : i + 64])
            for i in tqdm(range(0, len(images), 64), desc="real embeddings", leave=False)
        ]
        x = np.concatenate(vectors).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        order = np.random.default_rng(21).permutation(len(x))
        self.held_out, self.base = x[order[:queries]], x[order[queries:]]
        self.dim = x.shape[1]
        self.short = "real embeddings"
        self.label = (
            f"real: busque's EfficientNet-Lite0 vectors of {len(x):,} real images "
            f"({queries} held out as queries)"
        )

    def chunks(self, n: int, size: int):
        yield 0, self.base[:n]

    def queries(self, n: int) -> np.ndarray:
        return self.held_out[:n]


class TopK:
    """The running k highest exact inner products of a fixed query set, chunk by chunk (the
    ground truth: numpy's own product, apart from every index)."""

    def __init__(self, queries: np.ndarray, k: int) -> None:
        self.q = queries
        self.scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        self.k = k

    def update(self, x: np.ndarray) -> None:
        both = np.concatenate([self.scores, self.q @ x.T], axis=1)
        self.scores = -np.partition(-both, self.k - 1, axis=1)[:, : self.k]


TIE = 1e-5  # inner products this close to the k-th exact one count as ties (float rounding)


def recalls(scores: np.ndarray, ids: np.ndarray, kth: np.ndarray) -> np.ndarray:
    """Each query's recall@k, ties counted: the share of the k results whose inner product
    reaches the k-th exact one (every index here stores float32 vectors, so a result's score is
    its exact inner product). Real embeddings hold exact duplicates (copies, still frames): by
    ids alone, a scan that picks the other copy of a tie would lose recall it did not lose."""
    hit = (ids >= 0) & (scores >= kth[:, None] - TIE)
    return np.minimum(hit.sum(axis=1), K) / K


def recall_difference(a: np.ndarray, b: np.ndarray, resamples: int = 2000) -> dict:
    """mean(a) - mean(b) of paired per-query recalls, with a 95% bootstrap interval over the
    queries (seeded: the same figures every run)."""
    d = a - b
    rng = np.random.default_rng(0)
    means = d[rng.integers(0, len(d), (resamples, len(d)))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return {"median": float(d.mean()), "low": float(low), "high": float(high)}


# ---- the methods ----


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Method:
    """One index under test: how it adds, searches (one query, or a batch with its current
    parameter) and what its search parameter is."""

    def __init__(self, name: str, index, *, param: str | None = None, value=None) -> None:
        self.name, self.index, self.param, self.value = name, index, param, value
        self.build_s = self.build_cpu_s = 0.0
        self.shared = False  # a view of another method's storage: no build of its own

    def timing(self, fn, *a) -> None:
        """fn(*a), its wall and CPU seconds added to the build's."""
        wall, cpu = time.perf_counter(), cpu_s()
        fn(*a)
        self.build_s += time.perf_counter() - wall
        self.build_cpu_s += cpu_s() - cpu

    def add(self, first: int, x: np.ndarray) -> None:
        if isinstance(self.index, VectorIndex):  # as a Matcher adds: ids and vectors
            self.timing(self.index.add, np.arange(first, first + len(x)), x)
        else:
            self.timing(self.index.add, x)

    def _params(self):
        if self.param == "efSearch":
            return faiss.SearchParametersHNSW(efSearch=max(self.value, K))
        if self.param == "nprobe":
            return faiss.SearchParametersIVF(nprobe=self.value)
        return None

    def search(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the top K of each query."""
        if isinstance(self.index, VectorIndex):
            return self.index.search(q, K)
        return self.index.search(q, K, params=self._params())

    def describe(self) -> str:
        if isinstance(self.index, VectorIndex):
            c = self.index.config
            if self.index.active_kind == "hnsw":
                how = "auto -> hnsw" if c.kind == "auto" else f"kind={c.kind!r}"
                return (
                    f"VectorIndex({self.index.dim}) {how}: M={c.hnsw_m}, "
                    f"efConstruction {c.ef_construction}, efSearch {c.ef_search}"
                )
            return f"VectorIndex({self.index.dim}, kind={c.kind!r}) -> {self.index.active_kind}"
        return f"{self.param} {self.value}" if self.param else "exact"


def index_bytes(method: Method) -> int:
    """What the index holds in memory, from FAISS's own structures (serialising 5 GB to count
    it would double the peak)."""
    index = method.index
    extra = 0
    if isinstance(index, VectorIndex):
        extra = 8 * len(index)  # the id map
        index = faiss.downcast_index(index._index.index)
    if isinstance(index, faiss.IndexHNSW):
        h = index.hnsw
        graph = 4 * h.neighbors.size() + 8 * h.offsets.size() + 4 * h.levels.size()
        return extra + graph + index.ntotal * faiss.downcast_index(index.storage).code_size
    if isinstance(index, faiss.IndexIVF):
        return index.ntotal * (index.code_size + 8) + index.nlist * index.d * 4
    return extra + index.ntotal * index.code_size


def exact_view(busque: Method, dim: int) -> faiss.Index | None:
    """busque's HNSW storage as an exact index: an IndexFlat with METRIC_INNER_PRODUCT, what
    IndexFlatIP is (the same scan), over the very vectors busque stores; None if busque is flat."""
    if busque.index.active_kind != "hnsw":
        return None
    storage = faiss.downcast_index(faiss.downcast_index(busque.index._index.index).storage)
    assert storage.metric_type == faiss.METRIC_INNER_PRODUCT and storage.d == dim
    return storage


def ivf_nlist(n: int) -> int:
    """faiss's guideline, its low end: 4*sqrt(N) lists, no more than N/39 (faiss wants 39
    training vectors a list)."""
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


def build(
    data, n: int, chunk: int, queries: np.ndarray, peers: set[str]
) -> tuple[dict, np.ndarray, dict]:
    """Every method (the approximate `peers` among "ivf" and "hnsw") filled from the same
    chunks, in turn chunk by chunk (each method's time summed); the exact top-k of the queries
    computed on the way. Returns (methods, each query's k-th exact inner product, facts)."""
    from tqdm import tqdm

    dim = data.dim
    threads = os.cpu_count() or 1
    faiss.omp_set_num_threads(threads)
    nlist = ivf_nlist(n)
    train_n = min(n, 40 * nlist)
    parts = []  # the base set's first train_n vectors
    for _, x in data.chunks(n, chunk):
        parts.append(x)
        if sum(map(len, parts)) >= train_n:
            break
    train = np.concatenate(parts)[:train_n]
    del parts
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    hnsw = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)  # efConstruction 40
    methods = {BUSQUE: Method(BUSQUE, VectorIndex(dim))}
    if "hnsw" in peers:
        methods[HNSW] = Method(HNSW, hnsw, param="efSearch", value=hnsw.hnsw.efSearch)
    if "ivf" in peers:
        methods[IVF] = Method(IVF, ivf, param="nprobe", value=1)
        methods[IVF].timing(ivf.train, train)
    del train
    if n <= VectorIndexConfig(dim).flat_threshold:  # busque is exact here: check its HNSW too
        methods["busque hnsw"] = Method("busque hnsw", VectorIndex(dim, "hnsw"))
    truth = TopK(queries, K)
    for first, x in tqdm(data.chunks(n, chunk), total=-(-n // chunk), desc="building", leave=False):
        truth.update(x)
        for method in methods.values():
            method.add(first, x)
    view = exact_view(methods[BUSQUE], dim)
    if view is None:  # busque is flat at this size: the exact peer gets its own IndexFlatIP
        flat = Method(FLAT, faiss.IndexFlatIP(dim))
        for first, x in data.chunks(n, chunk):
            flat.add(first, x)
    else:
        flat = Method(FLAT, view)
        flat.shared = True
    methods = {FLAT: flat, **methods}
    facts = {"nlist": nlist, "ivf_trained_on": train_n, "build_threads": threads}
    return methods, truth.scores.min(axis=1), facts


# ---- tuning (one half of the queries) and timing (the other) ----


def timed(method: Method, queries: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """One query per call, one thread: (ids, seconds of each call)."""
    faiss.omp_set_num_threads(1)
    got, seconds = [], []
    for q in queries:
        t = time.perf_counter()
        got.append(method.search(q[None])[1][0])
        seconds.append(time.perf_counter() - t)
    return np.array(got), seconds


def batch_recalls(method: Method, queries: np.ndarray, truth: np.ndarray) -> np.ndarray:
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    return recalls(*method.search(queries), truth)


def batch_recall(method: Method, queries: np.ndarray, truth: np.ndarray) -> float:
    return float(batch_recalls(method, queries, truth).mean())


def tune(method: Method, values, queries, truth, target: float) -> list[dict]:
    """Sweep the method's parameter on the tuning queries (recall, one pass of one-query
    latency), then keep the smallest value reaching `target` (the largest when none does)."""
    sweep = []
    for value in values:
        method.value = value
        recall = batch_recall(method, queries, truth)
        _, seconds = timed(method, queries)
        sweep.append(
            {method.param: value, "recall": round(recall, 4), "p50_ms": p_ms(seconds, 0.5)}
        )
        if recall >= target and len(sweep) > 1 and sweep[-2]["recall"] >= target:
            break  # two past the target: the curve is drawn far enough
    reached = [row for row in sweep if row["recall"] >= target]
    method.value = (reached[0] if reached else max(sweep, key=lambda r: r["recall"]))[method.param]
    return sweep


def p_ms(seconds: list[float], q: float) -> float:
    return round(1000 * float(np.quantile(seconds, q)), 4)


def dataset_results(data, n: int, args, queries: int, peers=("ivf", "hnsw")) -> dict:
    """Build, tune and time every method on one data set of n vectors, with `queries` queries
    a half."""
    queries = data.queries(2 * queries)
    methods, truth, facts = build(data, n, args.chunk, queries, set(peers))
    half = len(queries) // 2
    tune_q, tune_t, report_q, report_t = queries[:half], truth[:half], queries[half:], truth[half:]
    target = batch_recall(methods[BUSQUE], tune_q, tune_t)
    grids = {HNSW: EF_SEARCHES, IVF: NPROBES}
    sweeps = {
        name: tune(methods[name], grid, tune_q, tune_t, target)
        for name, grid in grids.items()
        if name in methods
    }
    # Rounds: each method searches the report queries one at a time (the exact scan only
    # `--flat-queries` of them past 64 MiB of vectors: one scan of 1M x 1280 takes ~0.5 s).
    flat_q = report_q[: args.flat_queries] if n * data.dim * 4 > 64 * 2**20 else report_q
    latencies: dict[str, list[list[float]]] = {name: [] for name in methods}

    def case(name):
        def run():
            latencies[name].append(timed(methods[name], flat_q if name == FLAT else report_q)[1])

        return run

    harness.interleaved({name: case(name) for name in methods}, args.repeats, desc=f"rounds, {n:,}")
    rows = {}
    per_query = {name: batch_recalls(m, report_q, report_t) for name, m in methods.items()}
    for name, method in methods.items():
        rounds = latencies[name][1:]  # past the warm-up round
        p50s = [1000 * float(np.quantile(r, 0.5)) for r in rounds]
        p99s = [1000 * float(np.quantile(r, 0.99)) for r in rounds]
        rows[name] = {
            "config": method.describe(),
            "recall_at_10": round(float(per_query[name].mean()), 4),
            "recall_at_10_tuning_half": round(batch_recall(method, tune_q, tune_t), 4),
            "p50_ms": harness.scaled(harness.median_interval(p50s), 1, 4),
            "p99_ms": harness.scaled(harness.median_interval(p99s), 1, 4),
            "p50_ms_rounds": [round(v, 4) for v in p50s],
            "queries_timed": len(rounds[0]),
            "build_s": None if method.shared else round(method.build_s, 2),
            "build_cpu_s": None if method.shared else round(method.build_cpu_s, 2),
            "bytes_per_vector": round(index_bytes(method) / n, 1),
        }
    for name, row in rows.items():
        if name.startswith("busque"):
            continue
        # paired by round: how many times faster busque's p50 is than this peer's
        ratio = harness.ratio_interval(row["p50_ms_rounds"], rows[BUSQUE]["p50_ms_rounds"])
        row["busque_speedup_p50"] = harness.scaled(ratio, 1, 3)
        row["verdict"] = harness.verdict(ratio)
        # paired by query: how much more busque recalls (95% bootstrap interval)
        diff = recall_difference(per_query[BUSQUE], per_query[name])
        row["busque_recall_gain"] = harness.scaled(diff, 1, 4)
        row["recall_verdict"] = (
            "ahead" if diff["low"] > 0 else "behind" if diff["high"] < 0 else "level"
        )
        if name in (HNSW, IVF):
            row["reached_target_on_tuning_half"] = row["recall_at_10_tuning_half"] >= target
    return {
        "data": data.label,
        "short": data.short,
        "not_built": [name for name in (IVF, HNSW) if name not in methods],
        "n": n,
        "dim": data.dim,
        "queries_tuning": half,
        "queries_reported": len(report_q),
        "busque_kind": methods[BUSQUE].index.active_kind,
        "target_recall": round(target, 4),
        **facts,
        "sweeps": sweeps,
        "methods": rows,
    }


# ---- the page ----


def plot(results: dict, path: Path) -> None:
    """Recall@10 against one-query p50 latency: the tuning sweeps as curves, the reported
    points (held-out half) with their latency intervals, one panel a data set."""
    plt = harness.pyplot()
    sets = results["datasets"]
    fig, axes = plt.subplots(1, len(sets), figsize=(5.2 * len(sets), 4.4))
    colours = {FLAT: "black", IVF: "tab:blue", HNSW: "tab:green"}
    for ax, res in zip(np.atleast_1d(axes), sets, strict=True):
        for name, sweep in res["sweeps"].items():
            ax.plot(
                [r["p50_ms"] for r in sweep], [r["recall"] for r in sweep], ":", marker=".",
                color=colours[name], alpha=0.6, label=f"{name} sweep (tuning half)",
            )  # fmt: skip
        for name, row in res["methods"].items():
            p = row["p50_ms"]
            ax.errorbar(
                p["median"], row["recall_at_10"],
                xerr=[[p["median"] - p["low"]], [p["high"] - p["median"]]],
                fmt={BUSQUE: "o", "busque hnsw": "D"}.get(name, "s"),
                color="tab:red" if name.startswith("busque") else colours[name],
                capsize=3, label=name,
            )  # fmt: skip
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_xlabel("p50 ms per query (1 thread), log scale")
        ax.set_ylabel("recall@10")
        ax.set_title(f"{res['n']:,} x {res['dim']}: {res['short']}", fontsize=9)
        ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def section(res: dict) -> list[str]:
    kind = res["busque_kind"]
    lines = [
        f"## {res['n']:,} vectors: {res['data']}",
        "",
        f"busque's default here: {kind}"
        + (
            ' (exact below its 20,000-vector threshold; *busque hnsw*, `kind="hnsw"` with '
            "the same defaults, is a recall check)"
            if kind == "flat"
            else ""
        )
        + f". Target recall (busque's on the {res['queries_tuning']} tuning queries): "
        f"{res['target_recall']}. IVF: nlist {res['nlist']}, trained on "
        f"{res['ivf_trained_on']:,} vectors. Figures from the other {res['queries_reported']} "
        "queries.",
        "",
        *(
            [f"Not built at this size (--large-peers): {', '.join(res['not_built'])}.", ""]
            if res.get("not_built")
            else []
        ),
        "| method | settings | recall@10 | busque's recall gain | recall: busque is | p50 ms "
        "| p99 ms | busque's p50 speedup | speed: busque is | build s (once) | build CPU s "
        "| bytes/vector |",
        "|---|---|---:|---:|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    missed = []
    for name, row in res["methods"].items():
        peer = "verdict" in row
        note = "" if row.get("reached_target_on_tuning_half", True) else " (a)"
        if note:
            missed.append(name)
        if row["queries_timed"] != res["queries_reported"]:
            note += f" ({row['queries_timed']} queries a round)"
        cells = [
            f"{name}{note}",
            row["config"],
            str(row["recall_at_10"]),
            harness.show(row["busque_recall_gain"], 3) if peer else "",
            VERDICT_WORDS[row["recall_verdict"]] if peer else "",
            harness.show(row["p50_ms"], 3),
            harness.show(row["p99_ms"], 3),
            harness.show(row["busque_speedup_p50"], 2) if peer else "",
            VERDICT_WORDS[row["verdict"]] if peer else "",
            "" if row["build_s"] is None else str(row["build_s"]),
            "" if row["build_cpu_s"] is None else str(row["build_cpu_s"]),
            f"{row['bytes_per_vector']:,.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if missed:
        lines += [
            "",
            f"(a) No setting swept reached busque's recall on the tuning half: {', '.join(missed)} "
            "runs at the setting with its best recall there.",
        ]
    return [*lines, ""]


def behind(results: dict) -> list[str]:
    """One line per comparison busque is behind in (latency, recall), and slower builds."""
    out = []
    for res in results["datasets"]:
        rows = res["methods"]
        mine = rows[BUSQUE]
        where = f"{res['n']:,} ({res['short']})"
        for name, row in rows.items():
            if row.get("verdict") == "behind":
                out.append(
                    f"- {where}: {name} answers faster at its tuned setting "
                    f"(busque's p50 speedup {harness.show(row['busque_speedup_p50'], 2)})."
                )
            if row.get("recall_verdict") == "behind":
                out.append(
                    f"- {where}: {name} recalls more on the held-out queries "
                    f"({row['recall_at_10']} against busque's {mine['recall_at_10']}; "
                    f"busque's gain {harness.show(row['busque_recall_gain'], 3)})."
                )
        hnsw = rows.get(HNSW)
        if (
            hnsw
            and res["busque_kind"] == "hnsw"
            and mine["build_s"] > max(1.0, 1.1 * hnsw["build_s"])
        ):
            out.append(
                f"- {where}: building busque's HNSW took {mine['build_s']} s, faiss's "
                f"documented HNSW {hnsw['build_s']} s (efConstruction 80 against 40; one "
                "measurement each)."
            )
    return out


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        "# Vector search: busque's default index against the FAISS indexes a user would pick",
        "",
        f"faiss {m['faiss']}, numpy {m['numpy']}. Searches: one query per call on one thread; "
        f"builds: {results['datasets'][0]['build_threads']} threads, measured once (one build "
        f"per index per run). Latency: {results['repeats']} interleaved rounds after a warm-up "
        "round; p50/p99 are medians over the rounds with distribution-free intervals "
        "(median [low, high]); busque's speedup is the paired per-round ratio of p50s "
        "(> 1: busque faster) and *speed: busque is* reads it (ahead / level / behind). "
        "busque's recall gain is its mean recall@10 minus the peer's, paired by query, with a "
        "95% bootstrap interval over the queries, read as *recall: busque is*. Each peer's "
        "nprobe / efSearch is the smallest reaching busque's recall on the tuning half; the "
        "table is the other half.",
        "",
    ]
    for res in results["datasets"]:
        lines += section(res)
    found = behind(results)
    lines += ["## Where busque is behind", ""]
    lines += found if found else ["Nowhere in this run."]
    lines += [
        "",
        "The exact peer at sizes where busque runs HNSW is a scan over busque's own HNSW "
        "storage (an IndexFlat with METRIC_INNER_PRODUCT, which is what IndexFlatIP is): no "
        "second copy of the vectors, and no build time of its own. bytes/vector counts the "
        "stored vectors, the graph or lists and busque's id map. The plot "
        "(vector_search.png) shows recall against latency: the peers' tuning sweeps and every "
        "method's reported point.",
    ]
    return "\n".join(lines)


def memory_needed(n: int, dim: int, chunk: int, peers: list[str]) -> float:
    """GiB the run holds at its peak: a copy of the vectors per index (busque's HNSW, the IVF
    lists, faiss's HNSW where built), the graphs, a few chunks."""
    copies = 1 + len(peers)
    return (copies * n * dim * 4 + copies * n * 300 + 5 * chunk * dim * 4) / 2**30


def available_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def main() -> None:
    ap = harness.parser(__doc__)
    ap.add_argument(
        "--quick", action="store_true", help="24k and 6k vectors at 128-d, no real ones"
    )
    ap.add_argument("--n", type=int, default=1_000_000, help="the large set's size")
    ap.add_argument("--n-small", type=int, default=30_000, help="the 300/5000-cluster sets' size")
    ap.add_argument("--dim", type=int, default=1280, help="synthetic width (busque's: 1280)")
    ap.add_argument("--clusters", type=int, default=5000, help="the large set's clusters")
    ap.add_argument("--queries", type=int, default=200, help="queries per half (tune, report)")
    ap.add_argument(
        "--flat-queries",
        type=int,
        default=20,
        help="exact-scan queries a round where the vectors pass 64 MiB (default 20)",
    )
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds (>= 5)")
    ap.add_argument("--chunk", type=int, default=50_000, help="vectors per add() call")
    ap.add_argument("--no-real", action="store_true", help="skip the real embeddings")
    ap.add_argument(
        "--large-peers",
        default="ivf",
        help="approximate peers built at --n: ivf (default), hnsw, or both (ivf,hnsw: faiss's "
        "HNSW build adds about a third to the 1M run); the smaller sets always build both",
    )
    args = ap.parse_args()
    if args.quick:
        args.n, args.n_small, args.dim, args.queries = 24_000, 6_000, 128, 50
        args.large_peers = "ivf,hnsw"
    need, have = (
        memory_needed(args.n, args.dim, args.chunk, args.large_peers.split(",")),
        available_gib(),
    )
    if have is not None and need > have:
        sys.exit(f"--n {args.n:,} needs about {need:.1f} GiB, {have:.1f} GiB available")
    plan = [(Synthetic(args.dim, args.clusters), args.n)]
    if not args.quick:
        plan += [(Synthetic(args.dim, c), args.n_small) for c in (300, 5000)]
    else:
        plan += [(Synthetic(args.dim, 300), args.n_small)]
    datasets = []
    for data, n in plan:
        print(f"{n:,} vectors: {data.label}", flush=True)
        peers = args.large_peers.split(",") if n == args.n else ("ivf", "hnsw")
        datasets.append(dataset_results(data, n, args, args.queries, peers))
    if not args.no_real and not args.quick:  # (embedding 1,050 images takes a minute)
        real = Real(quick=False, queries=100)
        print(real.label, flush=True)
        datasets.append(dataset_results(real, len(real.base), args, 50))
    results = {
        "benchmark": "vector_search",
        "machine": harness.machine(faiss=faiss.__version__, numpy=np.__version__),
        "repeats": args.repeats,
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "datasets": datasets,
    }
    harness.publish("vector_search", results, markdown(results), args, plot)


if __name__ == "__main__":
    main()
