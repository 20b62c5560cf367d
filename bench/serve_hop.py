"""What one call between two services costs on this machine, by how long the callee runs:
a Ray Serve handle call (as busque's deployments call each other) against a plain Ray actor
call and an HTTP call to a FastAPI service (what two Python services use without Serve).

The callee busy-loops (or `asyncio.sleep`s) for a set time and reports when it started and
ended (time.perf_counter, one clock for every process on Linux), so each call splits into the
request leg (call -> method starts), the work and the response leg (method returns -> the caller
has the result). The caller is the benchmark's driver, one call at a time. Three callees, the
same two methods: a Serve deployment (0.25 CPU, the Serve settings `busque serve` ships: gRPC
between deployments) called through a DeploymentHandle; a Ray async actor (0.25 CPU) called
with `.remote()`; bench/peers/hop_fastapi.py under uvicorn called with an httpx keep-alive
client. Cases run interleaved: every round makes --calls calls of each case at each duration,
in an order that turns each round; the figures are medians over rounds (of each round's p50)
with their intervals. A search by image makes two long such calls (proxy -> Gateway, Gateway ->
Embedder) and two short ones (the Gateway fetching the upload from the proxy, Gateway ->
Matcher). Writes bench/results/serve_hop.json, .md and .png.

    python bench/serve_hop.py                   # full: 5 rounds x 60 calls, 8 durations x 2
    python bench/serve_hop.py --quick --no-write

It starts a Ray of its own: a DeploymentHandle is the thing measured, so there is no --url
(bench/search.py measures a running deployment over HTTP).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness

DURATIONS_MS = (0, 0.5, 1, 2, 4, 8, 16, 32)
SERVE, ACTOR, HTTP = "Serve handle", "Ray actor", "HTTP (FastAPI + uvicorn)"


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class Callee:
    async def busy(self, seconds: float) -> tuple[float, float]:
        started = time.perf_counter()
        busy(seconds)
        return started, time.perf_counter()

    async def sleep(self, seconds: float) -> tuple[float, float]:
        started = time.perf_counter()
        await asyncio.sleep(seconds)
        return started, time.perf_counter()


def start_callees():
    """The three callees; {case: async call(method, seconds) -> (started, ended)}, and a stop."""
    import httpx
    import ray
    from ray import serve

    harness.start_ray()
    serve.start(http_options={"host": "127.0.0.1", "port": harness.free_port()})
    deployment = serve.deployment(ray_actor_options={"num_cpus": 0.25})(Callee)
    handle = serve.run(deployment.bind(), name="serve-hop", route_prefix=None)
    actor = ray.remote(num_cpus=0.25)(Callee).remote()
    port = harness.free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.peers.hop_fastapi:app", "--port", str(port)]
        + ["--host", "127.0.0.1", "--log-level", "warning", "--no-access-log"],
        cwd=harness.ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)

    async def via_serve(method, seconds):
        return await getattr(handle, method).remote(seconds)

    async def via_actor(method, seconds):
        return await getattr(actor, method).remote(seconds)

    async def via_http(method, seconds):
        response = await client.post(f"/{method}", json={"seconds": seconds})
        response.raise_for_status()
        return response.json()

    async def ready():
        deadline = time.monotonic() + 60
        while True:
            try:
                await via_http("busy", 0)
                return
            except httpx.TransportError:
                assert server.poll() is None, "the FastAPI callee exited"
                assert time.monotonic() < deadline, "the FastAPI callee did not start"
                await asyncio.sleep(0.2)

    async def stop():  # Ray (this run's own) stops after the event loop: main()
        await client.aclose()
        server.terminate()
        server.wait(30)

    return {SERVE: via_serve, ACTOR: via_actor, HTTP: via_http}, ready, stop


async def legs(call, method: str, ms: float, calls: int) -> dict:
    """`calls` calls one at a time; the p50 of each leg, ms."""
    measured = []
    for _ in range(calls):
        sent = time.perf_counter()
        started, ended = await call(method, ms / 1000)
        received = time.perf_counter()
        measured.append((started - sent, ended - started, received - ended, received - sent))
    p50 = [statistics.median(leg[j] for leg in measured) * 1000 for j in range(4)]
    return {
        "request_leg_ms": p50[0],
        "work_ms": p50[1],
        "response_leg_ms": p50[2],
        "call_ms": p50[3],
        "overhead_ms": p50[3] - p50[1],
    }


async def run(args) -> dict:
    from tqdm import tqdm

    cases, ready, stop = start_callees()
    names = list(cases)
    rows = [(m, ms) for m in args.methods for ms in args.durations]
    samples = {f"{m} {ms}": {n: [] for n in names} for m, ms in rows}
    try:
        await ready()
        for name in names:  # warm: connections, the replica's and the actor's first calls
            await legs(cases[name], "busy", 0, max(5, args.calls // 5))
        for r in tqdm(range(args.rounds), desc="rounds", leave=False, mininterval=1.0):
            for method, ms in rows:
                for k in range(len(names)):
                    name = names[(r + k) % len(names)]
                    row = await legs(cases[name], method, ms, args.calls)
                    samples[f"{method} {ms}"][name].append(row)
    finally:
        await stop()
    return samples


def summarise(samples: dict) -> list[dict]:
    out = []
    for row, by in samples.items():
        method, ms = row.split()
        entry = {"method": method, "callee_ms": float(ms), "cases": {}, "vs_serve": {}}
        for name, rounds in by.items():
            entry["cases"][name] = {
                key: harness.scaled(harness.median_interval([r[key] for r in rounds]), 1)
                for key in ("request_leg_ms", "response_leg_ms", "call_ms", "overhead_ms")
            }
        serve = [r["overhead_ms"] for r in by[SERVE]]
        for name in (ACTOR, HTTP):
            # how many times the peer's overhead is the Serve handle's (above 1: Serve cheaper)
            ratio = harness.ratio_interval([r["overhead_ms"] for r in by[name]], serve)
            entry["vs_serve"][name] = {"ratio": ratio, "verdict": harness.verdict(ratio)}
        out.append(entry)
    return out


def plot(data: dict, path: Path) -> None:
    plt = harness.pyplot()
    fig, axes = plt.subplots(1, len(data["methods"]), figsize=(6 * len(data["methods"]), 3.8))
    axes = axes if len(data["methods"]) > 1 else [axes]
    for ax, method in zip(axes, data["methods"], strict=True):
        rows = [r for r in data["rows"] if r["method"] == method]
        x = [r["callee_ms"] for r in rows]
        for name in (SERVE, ACTOR, HTTP):
            cells = [r["cases"][name]["overhead_ms"] for r in rows]
            ax.plot(x, [c["median"] for c in cells], marker="o", label=name)
            ax.fill_between(x, [c["low"] for c in cells], [c["high"] for c in cells], alpha=0.2)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xticks(x, [f"{v:g}" for v in x])
        ax.set_xlabel("callee runs for (ms)")
        ax.set_ylabel("call overhead ms (median, interval)")
        ax.set_title({"busy": "callee busy-loops", "sleep": "callee sleeps"}[method])
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def page(data: dict) -> str:
    lines = [
        f"# One call between services: Serve handle vs Ray actor vs HTTP (Ray {data['ray']})",
        "",
        f"One call at a time from the driver; {data['calls']} calls per case per round, "
        f"{data['rounds']} rounds, cases interleaved (the order turns each round). Each cell: "
        "the median over rounds of a round's p50, [its interval]; overhead = the call's time - "
        "the callee's own. The Serve handle is what busque's deployments use between "
        "themselves (gRPC, as `busque serve` ships).",
        "",
        "## Overhead by callee duration",
        "",
        f"| callee | runs for ms | {SERVE} ms | {ACTOR} ms | {HTTP} ms "
        f"| Serve vs actor | verdict | Serve vs HTTP | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in data["rows"]:
        cells = [harness.show(row["cases"][n]["overhead_ms"], 3) for n in (SERVE, ACTOR, HTTP)]
        vs = row["vs_serve"]
        lines.append(
            f"| {row['method']} | {row['callee_ms']:g} | " + " | ".join(cells) + " | "
            f"{harness.show(vs[ACTOR]['ratio'])} | **{vs[ACTOR]['verdict']}** | "
            f"{harness.show(vs[HTTP]['ratio'])} | **{vs[HTTP]['verdict']}** |"
        )
    lines += [
        "",
        "Serve vs X: X's overhead / the Serve handle's, paired per round (above 1: the Serve "
        "handle is cheaper, **ahead**).",
        "",
        "## Legs of the Serve handle call",
        "",
        "| callee | runs for ms | request leg ms | response leg ms | call ms |",
        "|---|---|---|---|---|",
    ]
    for row in data["rows"]:
        cell = row["cases"][SERVE]
        lines.append(
            f"| {row['method']} | {row['callee_ms']:g} | {harness.show(cell['request_leg_ms'], 3)}"
            f" | {harness.show(cell['response_leg_ms'], 3)} | {harness.show(cell['call_ms'], 3)} |"
        )
    behind = [
        f"- against {name}, callee {row['method']} {row['callee_ms']:g} ms: "
        f"{harness.show(row['vs_serve'][name]['ratio'])}"
        for row in data["rows"]
        for name in (ACTOR, HTTP)
        if row["vs_serve"][name]["verdict"] == "behind"
    ]
    lines += ["", "## Where the Serve handle is behind", ""]
    lines += (
        [f"Behind in {len(behind)} of {2 * len(data['rows'])} comparisons:", *behind]
        if behind
        else ["Nowhere in this run."]
    )
    quick = [r for r in data["rows"] if r["method"] == "busy"]
    if quick:
        short, long = quick[0], quick[-1]
        one = short["cases"][SERVE]["overhead_ms"]["median"]
        many = long["cases"][SERVE]["overhead_ms"]["median"]
        lines += [
            "",
            "## Reading",
            "",
            f"- A Serve handle call whose callee busy-runs {short['callee_ms']:g} ms costs "
            f"{one:.2f} ms beyond it; one whose callee runs {long['callee_ms']:g} ms costs "
            f"{many:.2f} ms. A search by image makes two long calls and two short ones: about "
            f"{2 * many + 2 * one:.1f} ms of its overhead over an in-process server on this "
            "machine (bench/results/search.md).",
            "- A plain Ray actor call is the floor under a handle call (Serve adds routing, "
            "its replica's request handling and, with the settings `busque serve` ships, gRPC); "
            "the HTTP row is what a service would pay without Ray, one keep-alive connection.",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--calls", type=int, default=60, help="calls per case per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (>= 5)")
    parser.add_argument("--quick", action="store_true", help="2 durations, busy only, 10 calls")
    args = parser.parse_args()
    args.methods, args.durations = ("busy", "sleep"), DURATIONS_MS
    if args.quick:
        args.methods, args.durations, args.calls, args.rounds = ("busy",), (0, 4), 10, 5
    if args.rounds < 5:
        parser.error("--rounds: at least 5")

    import fastapi
    import ray

    try:
        samples = asyncio.run(run(args))
    finally:
        ray.shutdown()
    data = {
        "benchmark": "call cost between services: Serve handle vs Ray actor vs HTTP",
        "ray": ray.__version__,
        "fastapi": fastapi.__version__,
        "calls": args.calls,
        "rounds": args.rounds,
        "methods": list(args.methods),
        "rows": summarise(samples),
        "samples": samples,
    }
    harness.publish("serve_hop", data, page(data), args, plot)


if __name__ == "__main__":
    main()
