"""Jobs benchmark: create -> dispatch -> no-op model (`echo`) -> succeeded, through the real app.

Side by side in one run: busque on SQLite, busque on PostgreSQL, and the same no-op work as plain
Ray tasks (the baseline; the ratio is the platform's overhead). Each client submits a job with
POST /v1/jobs and waits for it with GET /v1/jobs/{id}?wait=..., so the latency is what a client
sees. Writes bench/results/jobs.json and jobs.md.

    python bench/jobs.py [--seconds 20] [--concurrency 32]
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The harness sets the Serve settings `busque serve` ships, before anything imports ray.serve.
from bench import harness
from busque.ray_start import SERVE_ENV
from busque.testing.servers import postgres  # the same real server as the tests

UNIT = "jobs"
# One event loop for the whole run: with Serve's throughput preset a DeploymentHandle's router
# lives on the loop that first used it.
LOOP = asyncio.new_event_loop()


def bench_busque(settings, concurrency: int, seconds: float) -> dict:
    from ray import serve

    app = harness.start_app(settings)

    async def run() -> dict:
        limits = httpx.Limits(max_connections=concurrency + 4)
        async with httpx.AsyncClient(
            base_url=app.url, headers={"X-API-Key": app.admin_key}, timeout=60, limits=limits
        ) as client:

            async def poll(_):  # POST, then long-poll GET ?wait=
                created = await client.post("/v1/jobs", json={"model": "echo", "input": {"n": 1}})
                assert created.status_code == 202, created.text
                job_id = created.json()["id"]
                while True:
                    job = (await client.get(f"/v1/jobs/{job_id}", params={"wait": 30})).json()
                    if job["status"] in ("succeeded", "failed", "canceled"):
                        assert job["status"] == "succeeded", job
                        return

            async def prefer_wait(_):  # one request: POST with Prefer: wait=30
                created = await client.post(
                    "/v1/jobs",
                    json={"model": "echo", "input": {"n": 1}},
                    headers={"Prefer": "wait=30"},
                )
                assert created.status_code == 201, created.text
                assert created.json()["status"] == "succeeded"

            results = {}
            for mode, one in (("prefer_wait", prefer_wait), ("poll", poll)):
                await harness.closed_loop(one, concurrency, min(3.0, seconds), UNIT)  # warm up
                results[mode] = {
                    f"concurrency_{concurrency}": await harness.closed_loop(
                        one, concurrency, seconds, UNIT
                    ),
                    "concurrency_1": await harness.closed_loop(one, 1, seconds / 2, UNIT),
                }
            return results

    try:
        return LOOP.run_until_complete(run())
    finally:
        serve.delete(settings.serve.app_name)


def bench_ray_tasks(concurrency: int, seconds: float) -> dict:
    import ray

    @ray.remote(num_cpus=0.1)
    def noop(payload):
        return {"echo": payload}

    async def run() -> dict:
        async def one(_):
            await noop.remote({"n": 1})

        await harness.closed_loop(one, concurrency, min(3.0, seconds), UNIT)
        return {
            f"concurrency_{concurrency}": await harness.closed_loop(
                one, concurrency, seconds, UNIT
            ),
            "concurrency_1": await harness.closed_loop(one, 1, seconds / 2, UNIT),
        }

    return LOOP.run_until_complete(run())


def settings_for(home: Path, database_url: str | None, port: int):
    from busque.config import Settings

    small = {"num_cpus": 0.25, "max_ongoing_requests": 1000}
    values = {
        "home": home,
        "serve": {"port": port, "grpc_port": port + 1, "gateway": small, "dispatcher": small},
        "model_deployments": {"utility": small},
        "quotas": {"requests_per_s": 0},  # one tenant at full speed: no per-tenant rate limit
    }
    if database_url:
        values["database"] = {"url": database_url, "pool_size": 20}
    return Settings(**values)


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--seconds", type=float, default=20, help="measured seconds per case")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    import ray

    harness.start_ray()
    port = harness.free_port()  # Serve's proxy keeps its first port: both apps use it
    results: dict = {
        "benchmark": "jobs: create -> dispatch -> echo -> succeeded (client-observed)",
        "machine": harness.machine(),
        "concurrency": args.concurrency,
        "serve_env": {k: os.environ.get(k) for k in SERVE_ENV},
        "seconds_per_case": args.seconds,
        "cases": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print("plain Ray tasks ...", flush=True)
        results["cases"]["ray_tasks"] = bench_ray_tasks(args.concurrency, args.seconds)
        print("busque on SQLite ...", flush=True)
        results["cases"]["busque_sqlite"] = bench_busque(
            settings_for(tmp / "sqlite", None, port), args.concurrency, args.seconds
        )
        print("busque on PostgreSQL ...", flush=True)
        pg_dir = tmp / "pg"
        pg_dir.mkdir()
        with postgres(pg_dir) as url:
            results["cases"]["busque_postgres"] = bench_busque(
                settings_for(tmp / "postgres", url, port), args.concurrency, args.seconds
            )
    ray.shutdown()

    key = f"concurrency_{args.concurrency}"
    base = results["cases"]["ray_tasks"]
    rows = [("ray_tasks", "-", base)]
    for name in ("busque_sqlite", "busque_postgres"):
        for mode, case in results["cases"][name].items():
            case["throughput_vs_ray_tasks"] = round(
                case[key]["jobs_per_s"] / base[key]["jobs_per_s"], 3
            )
            case["p50_overhead_ms_at_concurrency_1"] = round(
                case["concurrency_1"]["p50_ms"] - base["concurrency_1"]["p50_ms"], 2
            )
            rows.append((name, mode, case))
    m = results["machine"]
    lines = [
        f"# Jobs benchmark ({m['cpu']}, {m['cores']} cores, Python {m['python']})",
        "",
        f"Closed loop, {args.seconds:.0f} s per case, after a warm-up. `poll`: POST /v1/jobs then "
        "GET /v1/jobs/{id}?wait=30; `prefer_wait`: one POST with `Prefer: wait=30`. "
        "The baseline is the same no-op as a plain Ray task. Serve settings: "
        + ", ".join(f"{k}={v}" for k, v in results["serve_env"].items())
        + ".",
        "",
        f"| case | client | jobs/s @{args.concurrency} | p50 ms | p99 ms | p50 ms @1 | p99 ms @1 "
        "| p50 overhead @1 vs Ray task |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, mode, case in rows:
        hi, one = case[key], case["concurrency_1"]
        over = case.get("p50_overhead_ms_at_concurrency_1", "-")
        lines.append(
            f"| {name} | {mode} | {hi['jobs_per_s']} | {hi['p50_ms']} | {hi['p99_ms']} "
            f"| {one['p50_ms']} | {one['p99_ms']} | {over} |"
        )
    harness.write_results("jobs", results, "\n".join(lines), write=not args.no_write)


if __name__ == "__main__":
    main()
