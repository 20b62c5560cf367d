"""Near-duplicate lookup benchmark: radius-8 search over 1M and 10M stored 64-bit pHashes.

busque's PhashIndex (multi-index hashing) vs a numpy XOR-popcount scan, FAISS
IndexBinaryFlat (range_search) and pybktree (what imagededup uses), single-threaded.
Random codes, plus for each of the 100 query codes one planted code at Hamming distance
1..8 (cycling) at a random position; recall is the share of planted codes found.
pybktree is built on ``--bktree-size`` codes only (Python, too slow at 1M), and says so.
Writes bench/results/phash_lookup.json and .md.

    python bench/phash_lookup.py [--sizes 1000000,10000000] [--queries 100]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import faiss  # noqa: E402
import numpy as np  # noqa: E402
import pybktree  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness  # noqa: E402
from busque.index.phash_index import PhashIndex  # noqa: E402

RADIUS = 8


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
        threads=1,
    )


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def dataset(n: int, n_queries: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    queries = rng.integers(0, 2**64, n_queries, dtype=np.uint64, endpoint=False)
    where = rng.choice(n, n_queries, replace=False)
    planted = []
    for qi, q in enumerate(queries):
        d = 1 + qi % RADIUS
        bits = rng.choice(64, d, replace=False)
        mask = np.uint64(sum(1 << int(b) for b in bits))
        codes[where[qi]] = q ^ mask
        planted.append(int(where[qi]))
    return codes, queries, planted


def timed(fn, queries, warmup: int = 3):
    for q in queries[:warmup]:
        fn(q)
    times, results = [], []
    for q in queries:
        t = time.perf_counter()
        results.append(fn(q))
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1e3
    return results, {
        "p50_ms": round(float(np.percentile(ms, 50)), 4),
        "p99_ms": round(float(np.percentile(ms, 99)), 4),
        "mean_ms": round(float(ms.mean()), 4),
        "queries": len(queries),
    }


def recall(results, planted) -> float:
    return sum(p in set(r) for r, p in zip(results, planted, strict=True)) / len(planted)


def bench_size(n: int, n_queries: int, bktree_size: int, bktree_queries: int) -> dict:
    codes, queries, planted = dataset(n, n_queries)
    ids = np.arange(n, dtype=np.int64)
    out: dict = {"n": n, "radius": RADIUS, "planted": len(planted), "methods": {}}
    # the true answer, for checking every method
    truth = [set(np.flatnonzero(np.bitwise_count(codes ^ q) <= RADIUS).tolist()) for q in queries]

    # busque
    t = time.perf_counter()
    index = PhashIndex()
    index.add(ids, codes)
    build = time.perf_counter() - t
    res, stats = timed(lambda q: [i for i, _ in index.search_radius(q, RADIUS)], queries)
    stats.update(
        build_s=round(build, 2),
        index_mib=round(index.nbytes() / 2**20, 1),
        recall=recall(res, planted),
        exact=all(set(r) == tr for r, tr in zip(res, truth, strict=True)),
        structure="multi-index hashing, 3 substrings (22/21/21 bits) x radius 2",
    )
    out["methods"]["busque PhashIndex"] = stats
    index = None  # free it before the next method
    gc.collect()

    # numpy scan
    def scan(q):
        return np.flatnonzero(np.bitwise_count(codes ^ q) <= RADIUS).tolist()

    res, stats = timed(scan, queries)
    stats.update(build_s=0.0, recall=recall(res, planted))
    out["methods"]["numpy XOR-popcount scan"] = stats

    # faiss IndexBinaryFlat (range_search returns distances < radius, so radius + 1)
    faiss.omp_set_num_threads(1)
    t = time.perf_counter()
    flat = faiss.IndexBinaryFlat(64)
    flat.add(codes.view(np.uint8).reshape(n, 8))
    build = time.perf_counter() - t
    qbytes = queries.view(np.uint8).reshape(-1, 8)

    def frange(q_row):
        _, _, labels = flat.range_search(q_row[None, :], RADIUS + 1)
        return labels.tolist()

    res, stats = timed(frange, list(qbytes))
    stats.update(
        build_s=round(build, 2),
        recall=recall(res, planted),
        exact=all(set(r) == tr for r, tr in zip(res, truth, strict=True)),
    )
    out["methods"]["faiss IndexBinaryFlat range_search"] = stats
    flat = None
    gc.collect()

    # pybktree, on a subset that holds every planted code
    if bktree_size:
        m = min(n, bktree_size)
        keep = np.unique(np.concatenate([np.arange(m - len(planted)), planted]))
        t = time.perf_counter()
        tree = pybktree.BKTree(
            lambda a, b: (a[1] ^ b[1]).bit_count(),
            [(int(i), int(codes[i])) for i in keep],
        )
        build = time.perf_counter() - t
        qn = min(bktree_queries, len(queries))
        res, stats = timed(
            lambda q: [item[0] for _, item in tree.find((-1, int(q)), RADIUS)],
            queries[:qn],
            warmup=1,
        )
        stats.update(
            build_s=round(build, 2),
            recall=recall(res, planted[:qn]),
            note=f"built on {len(keep):,} codes (not {n:,}): pure Python, too slow at full size",
            n=len(keep),
        )
        out["methods"]["pybktree"] = stats
        del tree
    out["max_rss_mib"] = round(rss_mib(), 1)
    codes = None
    gc.collect()
    return out


def write_report(results: dict, write: bool = True) -> None:
    m = results["machine"]
    lines = [
        "# Near-duplicate lookup, radius 8, single thread",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB "
        f"(host {m['host']}); Python {m['python']}, numpy {m['numpy']}, faiss {m['faiss']}. "
        f"Run {results['date']}. Reproduce: `{results['command']}`.",
        "",
        "Random 64-bit codes plus one planted near-duplicate (distance 1..8) per query.",
        "",
    ]
    for size in results["sizes"]:
        lines += [
            f"## {size['n']:,} codes",
            "",
            "| method | p50 ms | p99 ms | build s | recall of planted | note |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for name, s in size["methods"].items():
            note = s.get("note", "")
            if "index_mib" in s:
                note = f"{s['structure']}; index {s['index_mib']} MiB; exact: {s['exact']}"
            lines.append(
                f"| {name} | {s['p50_ms']} | {s['p99_ms']} | {s['build_s']} | "
                f"{s['recall']:.0%} | {note} |"
            )
        lines += ["", f"Peak RSS after this size: {size['max_rss_mib']} MiB.", ""]
    floors = results["floors"]
    lines += ["## Floors", ""]
    for f in floors:
        lines.append(f"- {f['what']}: {f['value']} -> {'PASS' if f['pass'] else 'FAIL'}")
    harness.write_results("phash_lookup", results, "\n".join(lines), write=write)


def main() -> None:
    ap = harness.parser(__doc__)
    ap.add_argument("--sizes", default="1000000,10000000")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--bktree-size", type=int, default=200_000)
    ap.add_argument("--bktree-queries", type=int, default=20)
    args = ap.parse_args()
    faiss.omp_set_num_threads(1)
    results = {
        "benchmark": "phash_lookup",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python bench/phash_lookup.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "sizes": [],
    }
    for n in [int(s) for s in args.sizes.split(",")]:
        print(f"n={n:,} ...", flush=True)
        size = bench_size(n, args.queries, args.bktree_size, args.bktree_queries)
        for name, s in size["methods"].items():
            print(f"  {name}: p50 {s['p50_ms']} ms p99 {s['p99_ms']} ms recall {s['recall']:.0%}")
        results["sizes"].append(size)
    floors = []
    for size in results["sizes"]:
        limit = {1_000_000: 1.0, 10_000_000: 5.0}.get(size["n"])
        b = size["methods"]["busque PhashIndex"]
        if limit is not None:
            floors.append(
                {
                    "what": f"busque p50 <= {limit} ms at {size['n']:,}, recall 100%",
                    "value": f"p50 {b['p50_ms']} ms, recall {b['recall']:.0%}",
                    "pass": b["p50_ms"] <= limit and b["recall"] == 1.0,
                }
            )
    results["floors"] = floors
    write_report(results, write=not args.no_write)
    print(json.dumps(floors, indent=2))


if __name__ == "__main__":
    main()
