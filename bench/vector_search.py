"""Vector search benchmark: busque's VectorIndex over clustered synthetic 1280-d embeddings.

Data: ``--clusters`` random unit centres; each vector is centre + 0.6 * (a point of a shared
32-d latent subspace) + 0.3 * isotropic noise, L2-normalised (cosine = inner product).
Queries are fresh draws from the same distribution. Ground truth is an exact float32 scan
over every stored vector, computed chunk by chunk while the index is filled, so the full
float32 set (5 GB at 1M x 1280) is never held in memory.

Two parts:
1. At ``--n`` (1,000,000): IVF with SQ8 storage (1 byte a dimension, 1.3 GB at 1M; float32
   IVF-Flat would be 5.1 GB on a shared 24 GiB machine), nprobe swept.
2. At ``--sub-n`` (a size every kind builds in minutes on 2 cores): every kind offered
   (flat, hnsw, hnsw+sq8, ivf flat, ivf sq8, ivf pq), with build times; builds at 1M are
   extrapolated linearly from these and labelled as such.

Latency: one query at a time, one search thread. Build: all cores.
Writes bench/results/vector_search.json and .md.

    python bench/vector_search.py [--n 1000000] [--sub-n 100000]
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import gc  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import faiss  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness  # noqa: E402
from bench.phash_lookup import machine, rss_mib  # noqa: E402
from busque.index.vector_index import VectorIndex  # noqa: E402

K = 10


class Data:
    def __init__(self, dim: int, clusters: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.dim = dim
        c = rng.standard_normal((clusters, dim)).astype(np.float32)
        self.centres = c / np.linalg.norm(c, axis=1, keepdims=True)
        b = rng.standard_normal((32, dim)).astype(np.float32)
        self.basis = b / np.linalg.norm(b, axis=1, keepdims=True)
        self.seed = seed

    def chunk(self, i: int, n: int, stream: int = 1) -> np.ndarray:
        rng = np.random.default_rng((self.seed, stream, i))
        k = rng.integers(0, len(self.centres), n)
        z = rng.standard_normal((n, 32), dtype=np.float32) / np.sqrt(32)
        noise = rng.standard_normal((n, self.dim), dtype=np.float32) / np.sqrt(self.dim)
        x = self.centres[k] + 0.6 * (z @ self.basis) + 0.3 * noise
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x


class TopK:
    """Running exact top-k (inner product) for a fixed query set."""

    def __init__(self, queries: np.ndarray, k: int) -> None:
        self.q = queries
        self.scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        self.ids = np.full((len(queries), k), -1, dtype=np.int64)
        self.k = k

    def update(self, x: np.ndarray, first_id: int) -> None:
        s = self.q @ x.T
        cand_s = np.concatenate([self.scores, s], axis=1)
        cand_i = np.concatenate(
            [self.ids, np.broadcast_to(np.arange(first_id, first_id + len(x)), s.shape)], axis=1
        )
        top = np.argpartition(-cand_s, self.k - 1, axis=1)[:, : self.k]
        self.scores = np.take_along_axis(cand_s, top, axis=1)
        self.ids = np.take_along_axis(cand_i, top, axis=1)


def recall_at_k(got: np.ndarray, truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(g[g >= 0]) & set(t)) / len(t) for g, t in zip(got, truth, strict=True)])
    )


def measure(index: VectorIndex, queries: np.ndarray, truth: np.ndarray) -> dict:
    faiss.omp_set_num_threads(1)
    for q in queries[:5]:
        index.search(q, K)
    times, got = [], []
    for q in queries:
        t = time.perf_counter()
        _, ids = index.search(q, K)
        times.append(time.perf_counter() - t)
        got.append(ids[0])
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    ms = np.array(times) * 1e3
    return {
        "recall_at_10": round(recall_at_k(np.array(got), truth), 4),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
    }


def fill(index: VectorIndex, data: Data, n: int, chunk: int, truth: TopK | None) -> float:
    """Add n vectors chunk by chunk; returns the seconds spent inside the index."""
    spent = 0.0
    for i, start in enumerate(range(0, n, chunk)):
        x = data.chunk(i, min(chunk, n - start))
        if truth is not None:
            truth.update(x, start)
        t = time.perf_counter()
        index.add(np.arange(start, start + len(x)), x)
        spent += time.perf_counter() - t
    return spent


def main() -> None:
    ap = harness.parser(__doc__)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--sub-n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--chunk", type=int, default=100_000)
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--nprobes", default="4,8,16,32")
    ap.add_argument("--skip-sub", action="store_true")
    args = ap.parse_args()
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    data = Data(args.dim, args.clusters)
    queries = data.chunk(0, args.queries, stream=2)
    results: dict = {
        "benchmark": "vector_search",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python bench/vector_search.py " + " ".join(sys.argv[1:]),
        "machine": {**machine(), "threads": "build: all cores; search: 1 thread, 1 query"},
        "data": {
            "dim": args.dim,
            "clusters": args.clusters,
            "queries": args.queries,
            "k": K,
            "recipe": "centre + 0.6 * 32-d latent + 0.3 * isotropic noise, L2-normalised",
        },
        "full": None,
        "sub": [],
    }

    # part 2 first: every kind at sub-n (small, and it gives the per-vector build rates)
    if not args.skip_sub:
        n = args.sub_n
        kinds = [
            ("flat", {"kind": "flat"}),
            ("hnsw (M=32, float32)", {"kind": "hnsw", "ef_search": 64}),
            ("hnsw (M=32, sq8)", {"kind": "hnsw", "storage": "sq8", "ef_search": 64}),
            ("ivf flat", {"kind": "ivf", "nlist": 256, "nprobe": 8}),
            ("ivf sq8", {"kind": "ivf", "storage": "sq8", "nlist": 256, "nprobe": 8}),
        ]
        truth = None
        for name, opts in kinds:
            opts = dict(opts)
            kind = opts.pop("kind")
            index = VectorIndex(args.dim, kind, retrain_factor=None, **opts)
            top = TopK(queries, K) if truth is None else None
            build = fill(index, data, n, args.chunk, top)
            if top is not None:
                truth = top.ids
            row = {
                "index": name,
                "n": n,
                "build_s": round(build, 1),
                **measure(index, queries, truth),
            }
            row["build_s_at_1M_extrapolated"] = round(build * 1_000_000 / n, 0)
            row["bytes_per_vector"] = len(index.serialize()) // n
            print(row, flush=True)
            results["sub"].append(row)
            del index
            gc.collect()

    # part 1: IVF-SQ8 at full size
    n = args.n
    index = VectorIndex(
        args.dim,
        "ivf",
        storage="sq8",
        nlist=args.nlist,
        train_size=40 * args.nlist,
        retrain_factor=None,
    )
    top = TopK(queries, K)
    t0 = time.perf_counter()
    build = fill(index, data, n, args.chunk, top)
    total = time.perf_counter() - t0
    full = {
        "index": f"ivf sq8 (nlist={args.nlist}, trained on {40 * args.nlist:,})",
        "n": n,
        "build_s": round(build, 1),
        "wall_s_incl_data_and_truth": round(total, 1),
        "index_bytes": int(faiss.serialize_index(index._index).nbytes),
        "sweep": [],
    }
    for nprobe in [int(x) for x in args.nprobes.split(",")]:
        index.config.nprobe = nprobe
        row = {"nprobe": nprobe, **measure(index, queries, top.ids)}
        print(row, flush=True)
        full["sweep"].append(row)
    ok = [r for r in full["sweep"] if r["recall_at_10"] >= 0.95 and r["p50_ms"] <= 5.0]
    full["floor"] = {
        "what": "recall@10 >= 0.95 at p50 <= 5 ms over 1,000,000 vectors",
        "pass": bool(ok) and n >= 1_000_000,
        "best": ok[0] if ok else None,
    }
    full["max_rss_mib"] = round(rss_mib(), 1)
    results["full"] = full
    write_report(results, write=not args.no_write)
    print(json.dumps(full["floor"], indent=2))


def write_report(results: dict, write: bool = True) -> None:
    m, d, full = results["machine"], results["data"], results["full"]
    lines = [
        "# Vector search (busque VectorIndex over FAISS)",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB (host {m['host']}); "
        f"faiss {m['faiss']}. {m['threads']}. Run {results['date']}. "
        f"Reproduce: `{results['command']}`.",
        "",
        f"Data: {d['dim']}-d clustered synthetic vectors ({d['clusters']} clusters; {d['recipe']}); "
        f"{d['queries']} held-out queries; recall@{d['k']} against an exact float32 scan.",
        "",
        f"## {full['n']:,} vectors: {full['index']}",
        "",
        "Compressed: SQ8 keeps 1 byte a dimension (the float32 set would be 5.1 GB). "
        f"Build {full['build_s']} s (training + adding; wall {full['wall_s_incl_data_and_truth']} s "
        f"with data generation and the exact ground truth). Index {full['index_bytes'] / 2**30:.2f} GiB; "
        f"peak RSS {full['max_rss_mib']} MiB.",
        "",
        "| nprobe | recall@10 | p50 ms | p99 ms |",
        "|---:|---:|---:|---:|",
    ]
    for r in full["sweep"]:
        lines.append(f"| {r['nprobe']} | {r['recall_at_10']} | {r['p50_ms']} | {r['p99_ms']} |")
    f = full["floor"]
    lines += ["", f"Floor ({f['what']}): {'PASS' if f['pass'] else 'FAIL'}; best {f['best']}.", ""]
    if results["sub"]:
        n = results["sub"][0]["n"]
        lines += [
            f"## Every index kind at {n:,} vectors",
            "",
            "Build times at 1M are linear extrapolations from this size (HNSW grows slightly "
            "faster than linear), not measurements.",
            "",
            "| index | recall@10 | p50 ms | p99 ms | build s | build s at 1M (extrapolated) | bytes/vector |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in results["sub"]:
            lines.append(
                f"| {r['index']} | {r['recall_at_10']} | {r['p50_ms']} | {r['p99_ms']} | "
                f"{r['build_s']} | {r['build_s_at_1M_extrapolated']:.0f} | {r['bytes_per_vector']} |"
            )
    harness.write_results("vector_search", results, "\n".join(lines), write=write)


if __name__ == "__main__":
    main()
