"""busque on a 3-node Ray cluster against one node with the same logical CPUs: jobs/s, search
images/s, the memory each node costs, and the time from a node's death to every job being
terminal.

Both cases are real Ray clusters on this machine (busque/testing/ray_cluster.py: `ray start` on
loopback addresses, the workers in their own mount namespace), with busque deployed by `serve
deploy` on one PostgreSQL and one SeaweedFS, the way the README's cluster section does it. The
cases alternate (one node, three nodes, one node, ...) --repeats times; the figures are medians
with their min-max range.

On one 2-core machine three nodes share the same two cores, so this measures correctness and the
overhead of spreading busque over nodes (a proxy, agents and replicas per node; hops between
nodes), not scaling. The capacity model in the results says what a node of each kind serves.

    python bench/cluster.py --repeats 2 --seconds 20
"""

from __future__ import annotations

import asyncio
import io
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness
from bench.idle_memory import memory

# Small replicas so that everything fits on 2 cores; no placement pinning, so that both cases
# leave where replicas go to Ray (Serve spreads them over nodes).
ARGS = {
    "jobs": {"poll_s": 0.2, "heartbeat_s": 0.4, "lease_s": 2.0, "max_wait_s": 30},
    "faces": {"enabled": False},
    "quotas": {"requests_per_s": 0},  # one tenant at full speed: no per-tenant rate limit
    "serve": {"gateway": {"num_cpus": 0.1}, "dispatcher": {"num_cpus": 0.1}},
    "model_deployments": {
        name: {"num_cpus": 0.1} for name in ("embedder", "matcher", "ingest", "utility")
    },
}
CASES = {"1 node x 6 CPUs": {"workers": [], "num_cpus": 6}, "3 nodes x 2 CPUs": {"num_cpus": 2}}


def node_memory(cluster) -> dict[str, float]:
    """PSS (GiB) of each node's processes: its Ray servers, agents, proxy and replicas."""
    from busque.testing.ray_cluster import process_tree

    out = {}
    for node in cluster.nodes:
        rows = [m for m in map(memory, process_tree(node.proc.pid)) if m is not None]
        out[node.name] = round(sum(r[2] for r in rows) / 2**30, 3)
    return out


async def load(cluster, key: str, photos: list[bytes], seconds: float) -> dict:
    """Closed-loop echo jobs (create + long-poll) at concurrency 16, then image searches at
    concurrency 8, spread over every node's proxy (as a load balancer would)."""
    import httpx

    clients = [
        httpx.AsyncClient(base_url=n.serve_url, headers={"X-API-Key": key}, timeout=120)
        for n in cluster.nodes
    ]

    async def job(i: int) -> None:
        api = clients[i % len(clients)]
        created = await api.post("/v1/jobs", json={"model": "echo", "input": {"i": i}})
        created.raise_for_status()
        done = await api.get(f"/v1/jobs/{created.json()['id']}", params={"wait": 30})
        assert done.json()["status"] == "succeeded", done.text

    async def search(i: int) -> None:
        api = clients[i % len(clients)]
        found = await api.post(
            "/v1/search",
            files={"image": ("q.jpg", photos[i % len(photos)], "image/jpeg")},
            data={"k": "5"},
        )
        found.raise_for_status()

    try:
        for i, data in enumerate(photos):  # something to find
            response = await clients[i % len(clients)].post(
                "/v1/ingest", files={"image": (f"p{i}.jpg", data, "image/jpeg")}
            )
            response.raise_for_status()
        await job(0)  # warm
        await search(0)
        jobs = await harness.closed_loop(job, 16, seconds, "jobs")
        searches = await harness.closed_loop(search, 8, seconds, "images")
    finally:
        for client in clients:
            await client.aclose()
    return {"jobs": jobs, "search": searches}


def node_death(cluster, key: str, count: int = 20) -> float:
    """Seconds from SIGKILL of the worker holding the most busque replicas, with `count` echo
    jobs accepted, to every one of them being terminal (replicas move to the other nodes)."""
    import httpx

    replicas = cluster.actors(class_name_contains="ServeReplica:busque")
    busiest = max(
        cluster.workers,
        key=lambda w: sum(a["node_id"] == cluster.node_id(w) for a in replicas),
    )
    with httpx.Client(base_url=cluster.head.serve_url, headers={"X-API-Key": key}) as api:
        ids = []
        for i in range(count):
            created = api.post("/v1/jobs", json={"model": "echo", "input": {"i": i}})
            created.raise_for_status()
            ids.append(created.json()["id"])
        cluster.kill(busiest)
        killed = time.monotonic()
        for job_id in ids:
            while True:
                job = api.get(f"/v1/jobs/{job_id}", params={"wait": 10}, timeout=30).json()
                if job["status"] in ("succeeded", "failed", "canceled"):
                    break
        seconds = time.monotonic() - killed
    cluster.restart(busiest)
    return seconds


def photos(count: int = 8) -> list[bytes]:
    out = []
    for name in ("astronaut", "chelsea", "coffee", "rocket", "camera", "horse", "cat", "moon"):
        buffer = io.BytesIO()
        harness.photo(name).convert("RGB").save(buffer, "JPEG", quality=85)
        out.append(buffer.getvalue())
    return out[:count]


def one_run(case: str, servers: dict, seconds: float, death: bool) -> dict:
    from busque.testing.ray_cluster import LocalCluster, mount_namespaces_available

    shape = CASES[case]
    env = {
        **servers,
        "BUSQUE_STORAGE__S3_BUCKET": f"bench-{uuid.uuid4().hex[:8]}",
        "BUSQUE_HOME": tempfile.mkdtemp(prefix="busque-bench-home-"),
    }
    logs = Path(tempfile.mkdtemp(prefix="busque-bench-cluster-"))
    started = time.monotonic()
    with LocalCluster(
        logs,
        workers=shape.get("workers", ({}, {})),
        num_cpus=shape["num_cpus"],
        isolate=mount_namespaces_available(),
    ) as cluster:
        up_s = time.monotonic() - started
        bare = node_memory(cluster)
        deployed_at = time.monotonic()
        key = cluster.deploy_busque(env, ARGS)
        deploy_s = time.monotonic() - deployed_at
        served = asyncio.run(load(cluster, key, photos(), seconds))
        result = {
            "case": case,
            "cluster_up_s": round(up_s, 1),
            "deploy_s": round(deploy_s, 1),
            "node_pss_gib_bare": bare,
            "node_pss_gib_serving": node_memory(cluster),
            **served,
        }
        if death and cluster.workers:
            result["node_death_to_all_terminal_s"] = round(node_death(cluster, key), 1)
        cluster.serve_shutdown()
    return result


def median_range(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def markdown(runs: list[dict], args) -> str:
    lines = [
        f"# busque on 3 nodes vs 1 node ({harness.commit()}, {args.repeats} interleaved runs each)",
        "",
        "Every node on this one 2-core VM: the 3-node case has no more cores than the 1-node "
        "one, so this is the overhead of spreading busque over nodes, not its scaling.",
        "",
        "| case | jobs/s | job p50 ms | search images/s | search p50 ms | deploy s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for case in CASES:
        mine = [r for r in runs if r["case"] == case]
        lines.append(
            f"| {case} | {median_range([r['jobs']['jobs_per_s'] for r in mine])} "
            f"| {median_range([r['jobs']['p50_ms'] for r in mine])} "
            f"| {median_range([r['search']['images_per_s'] for r in mine])} "
            f"| {median_range([r['search']['p50_ms'] for r in mine])} "
            f"| {median_range([r['deploy_s'] for r in mine])} |"
        )
    deaths = [
        r["node_death_to_all_terminal_s"] for r in runs if "node_death_to_all_terminal_s" in r
    ]
    if deaths:
        lines += ["", f"Node death to all 20 accepted jobs terminal: {median_range(deaths)} s."]
    lines += ["", "Memory per node (PSS, GiB; bare Ray node, then serving busque):", ""]
    for r in runs:
        lines.append(f"- {r['case']}: {r['node_pss_gib_bare']} -> {r['node_pss_gib_serving']}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each case, interleaved")
    parser.add_argument("--seconds", type=float, default=20, help="closed-loop time per load")
    args = parser.parse_args()

    from busque.testing.servers import postgres, seaweedfs

    runs = []
    with (
        tempfile.TemporaryDirectory() as scratch,
        postgres(Path(scratch) / "pg") as database_url,
        seaweedfs(Path(scratch) / "s3") as s3,
    ):
        servers = {
            "BUSQUE_DATABASE__URL": database_url,
            "BUSQUE_STORAGE__BACKEND": "s3",
            "BUSQUE_STORAGE__S3_ENDPOINT": s3["endpoint"],
            "BUSQUE_STORAGE__S3_ACCESS_KEY": s3["access_key"],
            "BUSQUE_STORAGE__S3_SECRET_KEY": s3["secret_key"],
        }
        for repeat in range(args.repeats):
            for case in CASES:
                print(f"run {repeat + 1}/{args.repeats}: {case}", flush=True)
                runs.append(one_run(case, servers, args.seconds, death=True))
                print(runs[-1], flush=True)
    data = {"runs": runs, "machine": harness.machine()}
    harness.write_results("issue16/cluster", data, markdown(runs, args), write=not args.no_write)


if __name__ == "__main__":
    main()
