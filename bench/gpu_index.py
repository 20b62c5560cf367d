"""The Matcher's vector search on the CPU vs from its GPU copy (`index.device: cuda`): needs a GPU
and FAISS's GPU build (deploy/install-gpu-faiss.sh), so it runs when a session is lent one.

The same busque VectorIndex, filled once with bench/vector_search.py's clustered 1280-d vectors
(`--n`, default 200,000: 1 GB of float32), searched for the top 10 on the CPU (all cores, as a
CPU Matcher runs) and from the GPU copy, in interleaved rounds of `--queries` queries, one query
per call and a batch of 32 per call. Kinds: flat (exact) and ivf (nlist 1024, nprobe 32).
Reports the median per-query latency over rounds with its min-max, the results' agreement with
the CPU index, and the time to make the GPU copy (paid again on the first search after a write).
Writes bench/results/gpu_index.json and .md.

    python bench/gpu_index.py [--n 200000] [--queries 200] [--rounds 5]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness
from bench.vector_search import Data
from busque.index.device import gpu_unavailable_reason
from busque.index.vector_index import VectorIndex

K = 10
BATCH = 32


def per_query_ms(index: VectorIndex, queries: np.ndarray, batch: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(queries), batch):
        index.search(queries[i : i + batch], K)
    return (time.perf_counter() - start) * 1e3 / len(queries)


def bench_kind(kind: str, data: Data, args) -> dict:
    index = VectorIndex(data.dim, kind, nlist=1024, nprobe=32)
    for i, start in enumerate(range(0, args.n, 50_000)):
        x = data.chunk(i, min(50_000, args.n - start))
        index.add(np.arange(start, start + len(x)), x)
    queries = data.chunk(0, args.queries, stream=2)
    _, cpu_ids = index.search(queries, K)
    index.place("cuda")
    started = time.perf_counter()
    _, gpu_ids = index.search(queries, K)  # makes the copy
    copy_s = time.perf_counter() - started
    agree = float(
        np.mean([len(set(a) & set(b)) / K for a, b in zip(cpu_ids, gpu_ids, strict=True)])
    )
    times: dict[str, list[float]] = {}
    for _ in range(args.rounds):  # interleaved: CPU and GPU take turns in every round
        for device in ("cpu", "cuda"):
            index.place(device)
            index.search(queries[:1], K)  # the copy, outside the timing
            for batch in (1, BATCH):
                times.setdefault(f"{device} batch {batch}", []).append(
                    per_query_ms(index, queries, batch)
                )
    return {
        "n": args.n,
        "copy_s": round(copy_s, 3),
        "top10_agreement_with_cpu": round(agree, 4),
        "per_query_ms": {
            case: {
                "median": round(statistics.median(v), 4),
                "min": round(min(v), 4),
                "max": round(max(v), 4),
            }
            for case, v in times.items()
        },
    }


def main() -> None:
    ap = harness.parser(__doc__)
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if reason := gpu_unavailable_reason():
        sys.exit(f"bench/gpu_index.py needs a GPU: {reason}")
    import faiss
    import torch

    data = Data(1280, 1000)
    results = {
        "machine": harness.machine(faiss=faiss.__version__),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "unknown",
        "kinds": {kind: bench_kind(kind, data, args) for kind in ("flat", "ivf")},
    }
    lines = [
        f"# GPU vector index ({results['gpu']}), {args.n:,} x 1280",
        "",
        "| kind | case | median ms/query | min-max |",
        "|---|---|---|---|",
    ]
    for kind, r in results["kinds"].items():
        for case, t in r["per_query_ms"].items():
            lines.append(f"| {kind} | {case} | {t['median']} | {t['min']}-{t['max']} |")
    for kind, r in results["kinds"].items():
        lines.append(
            f"\n{kind}: GPU copy made in {r['copy_s']} s; top-10 agreement with the CPU index "
            f"{r['top10_agreement_with_cpu']}."
        )
    harness.write_results("gpu_index", results, "\n".join(lines) + "\n", write=not args.no_write)


if __name__ == "__main__":
    main()
