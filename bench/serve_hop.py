"""What one Serve handle call costs on this machine, by how long the callee runs.

A deployment method that busy-loops (or `asyncio.sleep`s) for a set time is called from the
driver through a DeploymentHandle, one call at a time; the callee reports when it started and
ended (time.perf_counter, one clock for every process on Linux), so each call splits into the
request leg (handle call -> method starts), the work and the response leg (method returns ->
the caller has the result). The search benchmark's overhead over in-process is mostly such legs:
a query makes two long calls (proxy -> Gateway, Gateway -> Embedder) and two short ones (the
Gateway fetching the upload from the proxy, Gateway -> Matcher).
Same Serve settings as `busque serve`. Writes bench/results/serve_hop.json and serve_hop.md.

    python bench/serve_hop.py [--calls 300]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness

DURATIONS_MS = (0, 0.5, 1, 2, 4, 8, 16, 32)


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def deployment():
    from ray import serve

    @serve.deployment(ray_actor_options={"num_cpus": 0.25})
    class Callee:
        async def busy(self, seconds: float) -> tuple[float, float]:
            started = time.perf_counter()
            busy(seconds)
            return started, time.perf_counter()

        async def sleep(self, seconds: float) -> tuple[float, float]:
            started = time.perf_counter()
            await asyncio.sleep(seconds)
            return started, time.perf_counter()

    return Callee


async def measure(handle, method: str, ms: float, calls: int) -> dict:
    legs = []
    for i in range(calls + calls // 5):  # the first fifth warms up
        sent = time.perf_counter()
        started, ended = await getattr(handle, method).remote(ms / 1000)
        received = time.perf_counter()
        if i >= calls // 5:
            legs.append((started - sent, ended - started, received - ended, received - sent))
    p50 = [round(statistics.median(leg[j] for leg in legs) * 1000, 3) for j in range(4)]
    return {
        "callee_ms": ms,
        "request_leg_ms": p50[0],
        "work_ms": p50[1],
        "response_leg_ms": p50[2],
        "call_p50_ms": p50[3],
        "overhead_ms": round(p50[3] - p50[1], 3),
    }


def write_report(results: dict, write: bool = True) -> None:
    m = results["machine"]
    lines = [
        f"# Serve handle call cost ({m['cpu']}, {m['cores']} cores, Ray {results['ray']})",
        "",
        "One call at a time from the driver through a DeploymentHandle (the Serve settings "
        "`busque serve` uses: gRPC between deployments); p50 of "
        f"{results['calls']} calls per row. overhead = call p50 - the callee's own time.",
        "",
        "| callee | runs for ms | request leg ms | response leg ms | call p50 ms | overhead ms |",
        "|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        lines.append(
            f"| {row['method']} | {row['callee_ms']} | {row['request_leg_ms']} "
            f"| {row['response_leg_ms']} | {row['call_p50_ms']} | {row['overhead_ms']} |"
        )
    quick = [r for r in results["rows"] if r["method"] == "busy" and r["callee_ms"] == 0][0]
    slow = [r for r in results["rows"] if r["method"] == "busy" and r["callee_ms"] == 16][0]
    lines += [
        "",
        f"A call whose callee returns at once costs {quick['overhead_ms']} ms; one whose callee "
        f"runs 16 ms costs {slow['overhead_ms']} ms beyond those 16 ms (request leg "
        f"{slow['request_leg_ms']} ms, response leg {slow['response_leg_ms']} ms). A search "
        "by image makes two long calls (proxy -> Gateway, Gateway -> Embedder) and two short "
        "ones (the Gateway fetching the upload from the proxy, Gateway -> Matcher): "
        f"{2 * slow['overhead_ms'] + 2 * quick['overhead_ms']:.1f} ms of its overhead over "
        "in-process on this machine (bench/results/search.md).",
    ]
    harness.write_results("serve_hop", results, "\n".join(lines), write=write)


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--calls", type=int, default=300, help="measured calls per row")
    args = parser.parse_args()

    import ray
    from ray import serve

    harness.start_ray()
    handle = serve.run(deployment().bind(), name="serve-hop", route_prefix=None)

    async def run() -> list[dict]:
        rows = []
        for method in ("busy", "sleep"):
            for ms in DURATIONS_MS:
                row = await measure(handle, method, ms, args.calls)
                rows.append({"method": method, **row})
                print(rows[-1], flush=True)
        return rows

    try:
        rows = asyncio.run(run())
    finally:
        serve.delete("serve-hop")
        ray.shutdown()
    write_report(
        {
            "benchmark": "Serve handle call cost by callee duration",
            "machine": harness.machine(),
            "ray": ray.__version__,
            "calls": args.calls,
            "rows": rows,
        },
        write=not args.no_write,
    )


if __name__ == "__main__":
    main()
