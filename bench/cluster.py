"""busque on a 3-node Ray cluster against the same busque on one node with the same logical
CPUs (the reference a cluster user weighs: is spreading over nodes worth its overhead?): jobs/s,
search images/s, p50 latencies, the memory each node costs, and the time from a node's death to
every accepted job being terminal.

Both cases are real Ray clusters on this machine (busque/testing/ray_cluster.py: `ray start` on
loopback addresses, the workers in their own mount namespace where allowed), with busque deployed
by `serve deploy` on one PostgreSQL and one SeaweedFS, the way the README's cluster section does
it. The cases alternate (one node, three nodes, three nodes, one node, ...: the order turns each
round) --repeats times (>= 5); figures are medians with distribution-free intervals, and the
3-node/1-node ratios are paired by round, read as "ahead", "level" or "behind".

On one 2-core machine three nodes share the same two cores, so this measures correctness and the
overhead of spreading busque over nodes (a proxy, agents and replicas per node; hops between
nodes), not scaling. It needs minutes per run (each starts a cluster and deploys busque), hence
`NEEDS = "cluster"`: `python -m bench all` skips it. Writes bench/results/cluster.json and .md.

    python bench/cluster.py [--repeats 5] [--seconds 15]   # about 13 min on 2 cores
    python bench/cluster.py --quick     # 1 node against 2 nodes, 1 round, 3 s loads (~4 min)
"""

from __future__ import annotations

import asyncio
import io
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness
from bench.idle_memory import memory

NEEDS = "cluster"  # minutes of its own multi-node Ray clusters: `python -m bench all` skips it

# Small replicas so that everything fits on 2 cores; no placement pinning, so that both cases
# leave where replicas go to Ray (Serve spreads them over nodes).
ARGS = {
    "jobs": {"poll_s": 0.2, "heartbeat_s": 0.4, "lease_s": 2.0, "max_wait_s": 30},
    "faces": {"enabled": False},
    "quotas": {"requests_per_s": 0},  # one tenant at full speed: no per-tenant rate limit
    "serve": {"gateway": {"num_cpus": 0.1}, "dispatcher": {"num_cpus": 0.1}},
    "model_deployments": {
        name: {"num_cpus": 0.1, "min_replicas": 1}  # utility (echo) warm from the start
        for name in ("embedder", "matcher", "ingest", "utility")
    },
}
CASES = {"1 node x 6 CPUs": {"workers": [], "num_cpus": 6}, "3 nodes x 2 CPUs": {"num_cpus": 2}}
QUICK_CASES = {
    "1 node x 4 CPUs": {"workers": [], "num_cpus": 4},
    "2 nodes x 2 CPUs": {"workers": [{}], "num_cpus": 2},
}


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


def one_run(case: str, shape: dict, servers: dict, seconds: float, death: bool) -> dict:
    from busque.testing.ray_cluster import LocalCluster, mount_namespaces_available

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


# (figure, key path, higher is better)
FIGURES = (
    ("jobs/s", ("jobs", "jobs_per_s"), True),
    ("job p50 ms", ("jobs", "p50_ms"), False),
    ("search images/s", ("search", "images_per_s"), True),
    ("search p50 ms", ("search", "p50_ms"), False),
    ("deploy s", ("deploy_s",), False),
)


def figure(run: dict, path: tuple) -> float:
    value = run
    for key in path:
        value = value[key]
    return float(value)


def summarise(runs: list[dict], cases: list[str]) -> dict:
    """Per case, each figure's median and interval; per figure, the many-node case against the
    one node, paired by round (>1: better on many nodes), and its verdict."""
    one, many = cases
    by_case = {case: [r for r in runs if r["case"] == case] for case in cases}
    out: dict = {"cases": {}, "many_vs_one": {}}
    for case, mine in by_case.items():
        out["cases"][case] = {
            name: harness.median_interval([figure(r, path) for r in mine])
            for name, path, _ in FIGURES
        }
    for name, path, higher in FIGURES:
        a = [figure(r, path) for r in by_case[one]]
        b = [figure(r, path) for r in by_case[many]]
        ratio = harness.ratio_interval(b, a) if higher else harness.ratio_interval(a, b)
        out["many_vs_one"][name] = {**harness.scaled(ratio, 1), "verdict": harness.verdict(ratio)}
    deaths = [
        r["node_death_to_all_terminal_s"]
        for r in by_case[many]
        if "node_death_to_all_terminal_s" in r
    ]
    out["node_death_to_all_terminal_s"] = harness.median_interval(deaths) if deaths else None
    return out


def markdown(data: dict) -> str:
    one, many = data["cases_run"]
    summary = data["summary"]
    level = summary["many_vs_one"]["jobs/s"]["level"]
    lines = [
        f"# busque on {many.split(' x')[0]} vs {one.split(' x')[0]}",
        "",
        f"Both real Ray clusters on this one machine, busque deployed by `serve deploy` on one "
        f"PostgreSQL and one SeaweedFS; {data['repeats']} rounds, the cases alternating (the "
        f"order turns each round); each round: closed-loop echo jobs (create + long-poll) at "
        f"concurrency 16 for {data['seconds']} s, then image searches at concurrency 8, spread "
        "over every node's proxy. Figures: the median round [a "
        f"{level:.1%} distribution-free interval]. The reference is the same busque on one "
        "node with the same logical CPUs: every node here shares the same cores, so this is the "
        "overhead of spreading busque over nodes, not its scaling.",
        "",
        "| case | " + " | ".join(name for name, _, _ in FIGURES) + " |",
        "|---|" + "---:|" * len(FIGURES),
    ]
    for case, figures in summary["cases"].items():
        lines.append(
            f"| {case} | " + " | ".join(harness.show(figures[n], 1) for n, _, _ in FIGURES) + " |"
        )
    lines += [
        "",
        f"## {many} against {one} (paired by round; > 1: better on more nodes)",
        "",
        "| figure | ratio [interval] | so more nodes are |",
        "|---|---|---|",
    ]
    for name, ratio in summary["many_vs_one"].items():
        lines.append(f"| {name} | {harness.show(ratio)} | **{ratio['verdict']}** |")
    behind = [n for n, r in summary["many_vs_one"].items() if r["verdict"] == "behind"]
    lines += [
        "",
        "Where busque is behind: "
        + (
            f"on {many.split(' x')[0]} it is behind one node in {', '.join(behind)} (requests "
            "cross nodes: proxy on one node, Gateway, Dispatcher and models on others; every "
            "node's Ray agents share the same cores)."
            if behind
            else "nowhere in this run (every interval holds 1 or is above it)."
        ),
    ]
    death = summary["node_death_to_all_terminal_s"]
    if death:
        lines += [
            "",
            f"Node death (SIGKILL of the worker holding the most busque replicas, 20 echo jobs "
            f"accepted just before) to every one of them terminal: {harness.show(death, 1)} s.",
        ]
    lines += ["", "Memory per node (PSS, GiB; bare Ray node, then serving busque), per run:", ""]
    for r in data["runs"]:
        lines.append(f"- {r['case']}: {r['node_pss_gib_bare']} -> {r['node_pss_gib_serving']}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument(
        "--repeats", type=int, default=5, help="rounds of the cases, interleaved (>= 5)"
    )
    parser.add_argument("--seconds", type=float, default=15, help="closed-loop time per load")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 node against 2 nodes, 1 round, 3 s loads, no node death; writes nothing",
    )
    args = parser.parse_args()
    if args.quick:
        cases, repeats, seconds = QUICK_CASES, 1, 3.0
    else:
        if args.repeats < 5:
            parser.error("--repeats: at least 5 (fewer give no interval worth the name)")
        cases, repeats, seconds = CASES, args.repeats, args.seconds

    from tqdm import tqdm

    from busque.testing.servers import postgres, seaweedfs

    runs = []
    names = list(cases)
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
        for repeat in tqdm(range(repeats), desc="rounds"):
            for k in range(len(names)):
                case = names[(repeat + k) % len(names)]  # the order turns each round
                runs.append(one_run(case, cases[case], servers, seconds, death=not args.quick))
                print(f"round {repeat + 1}/{repeats}: {runs[-1]}", flush=True)
    data = {
        "machine": harness.machine(),
        "repeats": repeats,
        "seconds": seconds,
        "cases_run": names,
        "runs": runs,
        "summary": summarise(runs, names),
    }
    harness.publish("cluster", data, markdown(data), args)


if __name__ == "__main__":
    main()
