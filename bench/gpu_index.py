"""The Matcher's vector search on the CPU vs from its GPU copy (`index.device: cuda`): needs a GPU
and FAISS's GPU build (deploy/install-gpu-faiss.sh), so it runs when a session is lent one.

The same busque VectorIndex, filled once with bench/vector_search.py's synthetic 1280-d vectors
(5000 Zipf-sized anisotropic clusters; `--n`, default 200,000: 1 GB of float32), searched for
the top 10 on the CPU (all cores, as a CPU Matcher runs) and from the GPU copy, in interleaved
rounds of `--queries` queries, one query per call and a batch of 32 per call. Kinds: flat
(exact) and ivf (nlist 1024, nprobe 32). Reports the median per-query latency over the rounds
with its distribution-free interval, the GPU's speedup (paired per-round ratio, read as ahead /
level / behind), the results' agreement with the CPU index, and the time to make the GPU copy
(paid again on the first search after a write). Writes bench/results/gpu_index.json and .md.

No quick mode: without a GPU there is nothing to compare (`python -m bench list` says "needs a
GPU", and `python -m bench all` skips it).

    python bench/gpu_index.py [--n 200000] [--queries 200] [--rounds 5]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness
from bench.vector_search import Synthetic
from busque.index.device import gpu_unavailable_reason
from busque.index.vector_index import VectorIndex

NEEDS = "GPU"  # read as text by bench/__main__.py
K = 10
BATCH = 32


def per_query_ms(index: VectorIndex, queries: np.ndarray, batch: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(queries), batch):
        index.search(queries[i : i + batch], K)
    return (time.perf_counter() - start) * 1e3 / len(queries)


def bench_kind(kind: str, data: Synthetic, args) -> dict:
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
            case: harness.scaled(harness.median_interval(v), 1, 4) for case, v in times.items()
        },
        # how many times faster the GPU copy answers than the CPU index, paired by round
        "gpu_speedup": {
            f"batch {b}": harness.scaled(
                harness.ratio_interval(times[f"cpu batch {b}"], times[f"cuda batch {b}"]), 1, 3
            )
            for b in (1, BATCH)
        },
    }


def main() -> None:
    ap = harness.parser(__doc__)
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (>= 5)")
    args = ap.parse_args()
    if reason := gpu_unavailable_reason():
        sys.exit(f"bench/gpu_index.py needs a GPU: {reason}")
    import faiss
    import torch

    data = Synthetic(1280, 5000)
    results = {
        "machine": harness.machine(faiss=faiss.__version__),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "unknown",
        "kinds": {kind: bench_kind(kind, data, args) for kind in ("flat", "ivf")},
    }
    lines = [
        f"# GPU vector index ({results['gpu']}), {args.n:,} x 1280",
        "",
        f"{args.rounds} interleaved rounds; medians with distribution-free intervals.",
        "",
        "| kind | case | ms/query | GPU's speedup | GPU is |",
        "|---|---|---:|---:|---|",
    ]
    for kind, r in results["kinds"].items():
        for case, t in r["per_query_ms"].items():
            speedup = r["gpu_speedup"][case.split(" ", 1)[1]] if case.startswith("cuda") else None
            lines.append(
                f"| {kind} | {case} | {harness.show(t, 4)} | "
                f"{harness.show(speedup) if speedup else ''} | "
                f"{'**' + harness.verdict(speedup) + '**' if speedup else ''} |"
            )
    for kind, r in results["kinds"].items():
        lines.append(
            f"\n{kind}: GPU copy made in {r['copy_s']} s; top-10 agreement with the CPU index "
            f"{r['top10_agreement_with_cpu']}."
        )
    results["repeats"] = args.rounds
    harness.publish("gpu_index", results, "\n".join(lines), args)


if __name__ == "__main__":
    main()
