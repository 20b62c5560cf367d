"""Jobs benchmark: busque's job queue against the queues users would pick instead, on one no-op.

Each case submits the same no-op job and waits for its result the way that library's docs say,
in a closed loop at concurrency 32 and 1 on this machine, every peer a real server started
here (throwaway processes in a temporary directory, on free loopback ports):
- busque through the whole service (POST /v1/jobs, the `echo` model, then GET /v1/jobs/{id}
  ?wait=30; and one POST with `Prefer: wait=30`), on SQLite and on PostgreSQL;
- the same no-op as plain Ray tasks (what the platform costs over Ray itself);
- Celery with Redis as broker and result backend, and Celery with RabbitMQ as broker and the
  RPC result backend (AsyncResult.get);
- RQ with Redis (Job.latest_result(timeout=...), RQ's blocking wait on the result stream);
- procrastinate on PostgreSQL (it keeps no return value: its job status, polled).
Cases run interleaved (A, B, C, ... then B, C, ..., A) for --rounds rounds after a warm-up round;
each round gives every case --seconds at concurrency 32 and --seconds at 1. Medians and
intervals of the rounds, and per peer a verdict from the paired per-round ratios. busque runs as
one app at a time on Serve, so its two backends are two phases, each interleaved with every
peer. A peer whose server binary or package is missing is skipped, and the output says so.
Writes bench/results/jobs.json and jobs.md.

    python bench/jobs.py [--seconds 2] [--rounds 5] [--concurrency 32]
    python bench/jobs.py --quick --no-write      (seconds; PostgreSQL phase only, tiny cases)
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The harness sets the Serve settings `busque serve` ships, before anything imports ray.serve.
from bench import harness
from busque.ray_start import SERVE_ENV
from busque.testing.servers import (  # the same real servers as the tests
    PG_BIN,
    postgres,
    postgres_available,
    rabbitmq,
    rabbitmq_binary,
    redis,
    redis_binary,
    stop_process,
)

ROOT = harness.ROOT
UNIT = "jobs"
# One event loop for the whole run: with Serve's throughput preset a DeploymentHandle's router
# lives on the loop that first used it.
LOOP = asyncio.new_event_loop()
WORKER_PROCESSES = 2  # one a core on the 2-core machines these run on
PROCRASTINATE_CONCURRENCY = 16  # async job slots in each procrastinate worker process
BUSQUE = ("busque_poll", "busque_prefer_wait")
LABELS = {
    "busque_poll": "busque (POST, GET ?wait=30)",
    "busque_prefer_wait": "busque (POST, Prefer: wait=30)",
    "ray_tasks": "plain Ray tasks",
    "celery_redis": "Celery + Redis",
    "celery_rabbitmq": "Celery + RabbitMQ",
    "rq_redis": "RQ + Redis",
    "procrastinate_postgres": "procrastinate + PostgreSQL",
}


@dataclass
class Peer:
    """A job queue as the benchmark runs it: `one(i)` submits job i and waits for its result."""

    name: str
    one: Callable
    how: str  # how its workers run and how the client waits, for the results page
    versions: dict = field(default_factory=dict)
    logs: list[Path] = field(default_factory=list)


def say(what: str) -> None:
    print(f"[{time.time() - harness.STARTED:5.1f} s] {what}", flush=True)


def version(package: str) -> str:
    return importlib.metadata.version(package)


def threaded(blocking: Callable, pool: ThreadPoolExecutor) -> Callable:
    """An async `one(i)` for a library whose client blocks (Celery, RQ): each closed-loop worker
    waits in a thread of its own, as a threaded web server would."""

    async def one(i):
        await LOOP.run_in_executor(pool, blocking, i)

    return one


@contextlib.contextmanager
def worker(args: list[str], env: dict, log_path: Path):
    """A peer's worker process (its own session, so stopping it stops its children)."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        stop_process(proc)


def first_job(peer: Peer) -> None:
    """Returns once one job has gone through the peer (its workers are up); else raises, with
    the workers' logs."""
    try:
        LOOP.run_until_complete(asyncio.wait_for(peer.one(0), 90))
    except Exception as exc:
        logs = peer.logs
        tails = "\n".join(f"{p.name}:\n{p.read_text(errors='replace')[-2000:]}" for p in logs)
        raise RuntimeError(f"{peer.name}: the first job did not come back\n{tails}") from exc


def worker_env(**values: str) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), **values}


def bin_path(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def start_celery(stack, app_name: str, tmp: Path, pool) -> Peer:
    """Celery's worker for one of bench.peers.celery_tasks's apps (its broker's URL is in the
    environment, read when that module is first imported)."""
    from bench.peers import celery_tasks

    name = {"redis_app": "celery_redis", "rabbitmq_app": "celery_rabbitmq"}[app_name]
    args = [
        bin_path("celery"),
        "-A",
        f"bench.peers.celery_tasks:{app_name}",
        "worker",
        "--pool=prefork",
        f"--concurrency={WORKER_PROCESSES}",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel=WARNING",
    ]
    log = tmp / f"{name}.log"
    stack.enter_context(worker(args, worker_env(), log))
    noop = getattr(celery_tasks, app_name).tasks["noop"]

    def blocking(i):
        assert noop.delay(i).get(timeout=60) == {"echo": i}

    results = (
        "Redis is broker and result backend (results arrive by Redis pub/sub)"
        if "redis" in name
        else "RabbitMQ is the broker, results come back over it (`backend='rpc://'`, as in "
        "Celery's first steps)"
    )
    how = (
        f"`celery -A bench.peers.celery_tasks:{app_name} worker --pool=prefork "
        f"--concurrency={WORKER_PROCESSES} --without-gossip --without-mingle "
        "--without-heartbeat`, `worker_prefetch_multiplier=16` (Celery's optimizing guide: "
        f"short tasks want a higher prefetch); {results}; the client calls "
        "`noop.delay(i).get()`"
    )
    versions = {"celery": version("celery"), "kombu": version("kombu")}
    return Peer(name, threaded(blocking, pool), how, versions, [log])


def start_rq(stack, tmp: Path, pool) -> Peer:
    from redis import Redis
    from rq import Queue
    from rq.results import Result

    from bench.peers import rq_tasks

    url = f"{os.environ['BENCH_REDIS_URL']}/1"
    queue = Queue("bench", connection=Redis.from_url(url))
    args = [bin_path("rq"), "worker-pool", "bench", "-n", str(WORKER_PROCESSES), "-u", url, "-q"]
    log = tmp / "rq.log"
    stack.enter_context(worker(args, worker_env(), log))

    def blocking(i):
        result = queue.enqueue(rq_tasks.noop, i).latest_result(timeout=60)
        assert result is not None and result.type == Result.Type.SUCCESSFUL, result
        assert result.return_value == {"echo": i}

    how = (
        f"`rq worker-pool bench -n {WORKER_PROCESSES}` (RQ's default Worker: it forks a "
        "work horse for every job); the client calls `queue.enqueue(noop, i)` then "
        "`job.latest_result(timeout=60)`, which blocks on the job's result stream"
    )
    versions = {"rq": version("rq"), "redis-py": version("redis")}
    return Peer("rq_redis", threaded(blocking, pool), how, versions, [log])


def start_procrastinate(stack, database_url: str, tmp: Path) -> Peer:
    import psycopg

    base = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute("CREATE DATABASE procrastinate")
    dsn = base.rsplit("/", 1)[0] + "/procrastinate"
    os.environ["BENCH_PROCRASTINATE_DSN"] = dsn
    from procrastinate.jobs import Status

    from bench.peers import procrastinate_tasks

    app = procrastinate_tasks.app
    LOOP.run_until_complete(app.open_async())
    stack.callback(lambda: LOOP.run_until_complete(app.close_async()))
    LOOP.run_until_complete(app.schema_manager.apply_schema_async())
    logs = []
    for k in range(WORKER_PROCESSES):
        args = [
            bin_path("procrastinate"),
            "--app=bench.peers.procrastinate_tasks.app",
            "--log-level=warning",
            "worker",
            f"--concurrency={PROCRASTINATE_CONCURRENCY}",
        ]
        logs.append(tmp / f"procrastinate-{k}.log")
        stack.enter_context(worker(args, worker_env(BENCH_PROCRASTINATE_DSN=dsn), logs[-1]))

    async def one(i):
        job_id = await procrastinate_tasks.noop.defer_async(n=i)
        pause = 0.002
        while True:
            status = await app.job_manager.get_job_status_async(job_id)
            if status == Status.SUCCEEDED:
                return
            assert status in (Status.TODO, Status.DOING), status
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 0.025)

    how = (
        f"{WORKER_PROCESSES} processes of `procrastinate worker "
        f"--concurrency={PROCRASTINATE_CONCURRENCY}` (LISTEN/NOTIFY on, its default), an async "
        "task; procrastinate keeps no return value, so the client (the same asyncio loop as "
        "busque's) defers with `defer_async` and polls `job_manager.get_job_status_async` "
        "every 2 ms, backing off x1.5 to 25 ms, until `succeeded`"
    )
    versions = {"procrastinate": version("procrastinate")}
    return Peer("procrastinate_postgres", one, how, versions, logs)


def busque_cases(client: httpx.AsyncClient) -> dict:
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
            "/v1/jobs", json={"model": "echo", "input": {"n": 1}}, headers={"Prefer": "wait=30"}
        )
        assert created.status_code == 201, created.text
        assert created.json()["status"] == "succeeded"

    return {"busque_poll": poll, "busque_prefer_wait": prefer_wait}


def ray_task_case() -> Callable:
    import ray

    @ray.remote(num_cpus=0.1)
    def noop(payload):
        return {"echo": payload}

    async def one(_):
        await noop.remote({"n": 1})

    return one


def settings_for(home: Path, database_url: str | None, port: int):
    from busque.config import Settings

    small = {"num_cpus": 0.25, "max_ongoing_requests": 1000, "min_replicas": 1}  # echo warm
    values = {
        "home": home,
        # No gRPC proxy: the cases speak HTTP (a fixed port + 1 was sometimes taken).
        "serve": {"port": port, "grpc_port": 0, "gateway": small, "dispatcher": small},
        "model_deployments": {"utility": small},
        "quotas": {"requests_per_s": 0},  # one tenant at full speed: no per-tenant rate limit
    }
    if database_url:
        values["database"] = {"url": database_url, "pool_size": 20}
    return Settings(**values)


def run_phase(name: str, settings, others: dict, args) -> dict:
    """busque on one backend, interleaved with every other case; per case the rounds' figures
    and their medians with intervals."""
    from ray import serve

    say(f"starting busque on {name}")
    app = harness.start_app(settings)
    limits = httpx.Limits(max_connections=args.concurrency + 4)
    client = httpx.AsyncClient(
        base_url=app.url, headers={"X-API-Key": app.admin_key}, timeout=60, limits=limits
    )
    cases = {**busque_cases(client), **others}
    rounds: dict[str, list] = {case: [] for case in cases}
    high = f"concurrency_{args.concurrency}"

    def timed(case: str) -> Callable:
        one = cases[case]

        def run():
            if case not in warmed:  # interleaved's warm-up round: untimed, shorter
                warmed.add(case)
                loop = harness.closed_loop(one, args.concurrency, args.warmup, UNIT)
                LOOP.run_until_complete(loop)
                return
            hi = harness.closed_loop(one, args.concurrency, args.seconds, UNIT)
            lo = harness.closed_loop(one, 1, args.seconds, UNIT)
            figures = {high: LOOP.run_until_complete(hi)}
            figures["concurrency_1"] = LOOP.run_until_complete(lo)
            rounds[case].append(figures)

        return run

    warmed: set[str] = set()
    say(f"{name}: {', '.join(cases)} x {args.rounds} rounds")
    try:
        timings = harness.interleaved({case: timed(case) for case in cases}, args.rounds, desc=name)
    finally:
        LOOP.run_until_complete(client.aclose())
        serve.delete(settings.serve.app_name)
    walls = {case: [round(v, 2) for v in t["wall_s"]] for case, t in timings.items()}
    say(f"{name}: seconds per case and round (both concurrencies): {walls}")
    return {case: {**summarise(samples), "wall_s": walls[case]} for case, samples in rounds.items()}


def summarise(samples: list[dict]) -> dict:
    """A case's rounds and, per concurrency, the median and interval of jobs/s, p50 and p99."""
    out = {"rounds": samples}
    for level in samples[0]:
        out[level] = {
            metric: harness.median_interval([s[level][metric] for s in samples])
            for metric in ("jobs_per_s", "p50_ms", "p99_ms")
        }
    return out


# What a verdict compares: (concurrency key, metric, higher is better).
VERDICTS = {
    "jobs/s @{c}": ("high", "jobs_per_s", True),
    "p50 @1": ("concurrency_1", "p50_ms", False),
    "p99 @{c}": ("high", "p99_ms", False),
}


def verdicts(cases: dict, concurrency: int) -> dict:
    """For each busque client against each other case, each VERDICTS metric as busque's
    advantage round by round (jobs/s busque / peer; latency peer / busque: > 1 is busque
    better), its median and interval and the verdict."""
    out = {}
    for mine in BUSQUE:
        for peer in cases:
            if peer in BUSQUE:
                continue
            row = {}
            for label, (level, metric, higher) in VERDICTS.items():
                level = f"concurrency_{concurrency}" if level == "high" else level
                a = [r[level][metric] for r in cases[mine]["rounds"]]
                b = [r[level][metric] for r in cases[peer]["rounds"]]
                ratio = harness.ratio_interval(a, b) if higher else harness.ratio_interval(b, a)
                row[label.format(c=concurrency)] = {**ratio, "verdict": harness.verdict(ratio)}
            out[f"{mine} vs {peer}"] = row
    return out


def page(results: dict, args) -> str:
    m, c = results["machine"], args.concurrency
    lines = [
        f"# Jobs: busque against the job queues users pick ({m['cpu']}, {m['cores']} cores, "
        f"Python {m['python']})",
        "",
        "The same no-op job (`{'echo': n}`), submitted and waited for the way each library's "
        f"docs say, by closed-loop clients at concurrency {c} and 1 on this machine. Every "
        "peer is a real server started by the benchmark. Cases ran interleaved for "
        f"{args.rounds} rounds after a warm-up round, each round {args.seconds:g} s per case "
        "at each concurrency, with every peer's server and workers up (idle while another "
        "case runs); figures are the median of the rounds [interval: "
        f"{harness.median_interval([0] * args.rounds)['level']:.2%} distribution-free]. "
        "Verdicts read busque's advantage round by round (jobs/s busque / peer; latency "
        "peer / busque; > 1 is busque better): **ahead** or **behind** only when the whole "
        "interval says so. Serve settings: "
        + ", ".join(f"{k}={v}" for k, v in results["serve_env"].items())
        + ".",
        "",
    ]
    behind = [
        f"{LABELS[pair.split(' vs ')[0]]} on {phase} against {LABELS[pair.split(' vs ')[1]]}: "
        f"{metric} {v['median']:.2f}x"
        for phase, data in results["phases"].items()
        for pair, row in data["verdicts"].items()
        for metric, v in row.items()
        if v["verdict"] == "behind"
    ]
    words = [
        v["verdict"]
        for data in results["phases"].values()
        for row in data["verdicts"].values()
        for v in row.values()
    ]
    lines += ["## Where busque is behind", ""]
    lines += [f"Behind in {len(behind)} of {len(words)} comparisons:", ""] if behind else []
    lines += [f"- {line}" for line in behind] or ["Nowhere in this run."]
    lines += [
        "",
        f"Ahead in {words.count('ahead')}, level in {words.count('level')} (every comparison, "
        "with its interval, in the tables below).",
    ]
    for phase, data in results["phases"].items():
        lines += [
            "",
            f"## busque on {phase}, interleaved with the peers",
            "",
            f"| case | jobs/s @{c} | p50 ms @{c} | p99 ms @{c} | p50 ms @1 | p99 ms @1 |",
            "|---|---|---|---|---|---|",
        ]
        for case, figures in data["cases"].items():
            hi, one = figures[f"concurrency_{c}"], figures["concurrency_1"]
            lines.append(
                f"| {LABELS[case]} | {harness.show(hi['jobs_per_s'], 1)} "
                f"| {harness.show(hi['p50_ms'], 1)} | {harness.show(hi['p99_ms'], 1)} "
                f"| {harness.show(one['p50_ms'], 1)} | {harness.show(one['p99_ms'], 1)} |"
            )
        names = [label.format(c=c) for label in VERDICTS]
        lines += [
            "",
            f"busque's advantage over each (x, > 1 is busque better), busque on {phase}:",
            "",
            "| "
            + " | ".join(["busque client", "against", *(x for n in names for x in (n, ""))])
            + " |",
            "|---|---|" + "---|---|" * len(names),
        ]
        for pair, row in data["verdicts"].items():
            mine, peer = pair.split(" vs ")
            cells = " | ".join(f"{harness.show(row[n])} | **{row[n]['verdict']}**" for n in names)
            lines.append(f"| {LABELS[mine]} | {LABELS[peer]} | {cells} |")
    lines += ["", "## How each runs", ""]
    lines += [f"- {LABELS[name]}: {how}." for name, how in results["how"].items()]
    lines += [f"- Skipped: {reason}." for reason in results["skipped"]]
    versions = ", ".join(f"{k} {v}" for k, v in m.items() if k in VERSIONED)
    lines += ["", f"Versions: {versions}."]
    return "\n".join(lines)


VERSIONED = ("ray", "celery", "kombu", "rq", "redis-py", "redis-server", "rabbitmq-server")
VERSIONED += ("erlang", "procrastinate")
VERSIONED += ("postgresql", "httpx", "psycopg")


def server_versions() -> dict:
    out = {}
    if redis_binary():
        text = subprocess.run([redis_binary(), "--version"], capture_output=True, text=True)
        out["redis-server"] = text.stdout.split("v=", 1)[1].split()[0]
    if rabbitmq_binary():
        for package in ("rabbitmq-server", "erlang-base"):
            text = subprocess.run(
                ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True
            )
            out[package.split("-base")[0]] = text.stdout.decode() or "unknown"
    if postgres_available():
        text = subprocess.run([str(PG_BIN / "postgres"), "--version"], capture_output=True)
        out["postgresql"] = text.stdout.decode().split()[2]  # postgres (PostgreSQL) 15.18 ...
    return out


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--seconds", type=float, default=2, help="per case and concurrency")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of the warm-up round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="seconds, not minutes; no writes")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.warmup, args.concurrency = 0.1, 0.1, 4

    import ray

    skipped: list[str] = []
    say("starting Ray")
    harness.start_ray()
    port = harness.free_port()  # Serve's proxy keeps its first port: both apps use it
    versions = {"ray": ray.__version__, "httpx": version("httpx"), "psycopg": version("psycopg")}
    results: dict = {
        "benchmark": "jobs: submit a no-op, wait for its result (client-observed), vs peers",
        "concurrency": args.concurrency,
        "serve_env": {k: os.environ.get(k) for k in SERVE_ENV},
        "seconds_per_case": args.seconds,
        "rounds": args.rounds,
        "quick": args.quick,
        "phases": {},
        "how": {},
        "skipped": skipped,
    }
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        tmp = Path(tmp)
        pool = stack.enter_context(ThreadPoolExecutor(args.concurrency + 4))
        others: dict = {"ray_tasks": ray_task_case()}
        peers: list[Peer] = []
        database_url = None
        if postgres_available():
            (tmp / "pg").mkdir()
            database_url = stack.enter_context(postgres(tmp / "pg"))
        else:
            skipped.append(f"busque on PostgreSQL and procrastinate: no PostgreSQL at {PG_BIN}")
        starts = {}  # each peer's start, run once every server is up
        if redis_binary():
            os.environ["BENCH_REDIS_URL"] = stack.enter_context(redis(tmp / "redis"))
            starts["celery_redis"] = partial(start_celery, stack, "redis_app", tmp, pool)
            starts["rq_redis"] = partial(start_rq, stack, tmp, pool)
        else:
            skipped.append("Celery and RQ: no `redis-server` (apt-get install redis-server)")
        if rabbitmq_binary():
            say("starting RabbitMQ")
            os.environ["BENCH_AMQP_URL"] = stack.enter_context(rabbitmq(tmp / "rabbitmq"))
            starts["celery_rabbitmq"] = partial(start_celery, stack, "rabbitmq_app", tmp, pool)
        else:
            skipped.append("Celery + RabbitMQ: no RabbitMQ (apt-get install rabbitmq-server)")
        for name, start in starts.items():
            say(f"starting {name}")
            try:
                peers.append(start())
            except ImportError as exc:
                skipped.append(f"{name}: {exc} (pip install -e '.[bench]')")
        if database_url:
            say("starting procrastinate")
            try:
                peers.append(start_procrastinate(stack, database_url, tmp))
            except ImportError as exc:
                skipped.append(f"procrastinate_postgres: {exc} (pip install -e '.[bench]')")
        for line in skipped:
            print(f"skipped: {line}", flush=True)
        for peer in peers:  # their workers start side by side; each is up once a job is done
            first_job(peer)
            others[peer.name] = peer.one
            results["how"][peer.name] = peer.how
            versions.update(peer.versions)
        phases = [("SQLite", None), ("PostgreSQL", database_url)]
        if args.quick and database_url:
            phases = phases[1:]
            skipped.append("busque on SQLite: --quick runs one phase, PostgreSQL")
            print("skipped: busque on SQLite (--quick runs the PostgreSQL phase only)")
        for phase, url in phases:
            if phase == "PostgreSQL" and not url:
                continue
            settings = settings_for(tmp / phase, url, port)
            cases = run_phase(phase, settings, others, args)
            results["phases"][phase] = {
                "cases": cases,
                "verdicts": verdicts(cases, args.concurrency),
            }
    ray.shutdown()
    results["machine"] = harness.machine(**versions, **server_versions())
    results["how"] = {
        "busque_poll": "the service on Ray Serve as `busque serve` starts it; POST /v1/jobs "
        "(model `echo`), then GET /v1/jobs/{id}?wait=30 until terminal, from one asyncio loop "
        "with httpx",
        "busque_prefer_wait": "the same app; one POST /v1/jobs with `Prefer: wait=30`",
        "ray_tasks": "the same no-op as a `@ray.remote(num_cpus=0.1)` function, awaited",
        **results["how"],
    }
    say("done")
    harness.publish("jobs", results, page(results, args), args)


if __name__ == "__main__":
    main()
