"""Hardening benchmark: what hostile or noisy clients cost the others, through the real app on
loopback. The reference is busque itself with no hostile client (there is no peer a user would
put in its place here: the question is whether one tenant can hurt another): idle and loaded
rounds alternate (idle, loaded, then loaded, idle: the order turns each round), >= 5 rounds in
full mode; figures are the medians of the rounds' p50/p99 with distribution-free intervals, and
"under load busque is ahead / level / behind itself idle" as the paired per-round ratio's
interval says. A goal is met only when the whole interval clears it.

1. Slow clients: `--slow` sockets (default 5,000) of tenant A held open against the Serve port, a
   third each sending headers a byte every few seconds, a body without a key, and a body with
   A's key, a byte every few seconds. Meanwhile, and in the idle rounds without them, `GET
   /healthz` and a small search (`POST /v1/search` by pHash) of tenant B, one at a time: p50/p99.
   Goal: both under 100 ms p99.
2. A noisy neighbour: tenant B submits a 0.2 s job and waits for it (`Prefer: wait`), alone and
   while tenant A keeps jobs of 2 s queued and holds 150 event streams open. B's p50; goal: within
   2x of idle.
3. A trickling webhook receiver: tenant A's jobs deliver to a receiver that answers a byte a
   second, tenant B's to a healthy one: the delay from B's job ending to its webhook arriving;
   goal: under 2 s. Not interleaved: A's deliveries retry for minutes once queued (that is the
   attack), so B's idle rounds run first, then the loaded ones.

Without --url it starts its own busque on a local Ray (the `sleep` and `echo` fixture models,
webhooks allowed to loopback). With --url URL --api-key KEY --noisy-key KEY2 it benches a running
busque that serves tests.fixture_models (`sleep`, `echo`) and may send webhooks to 127.0.0.1 (the
receivers run in this process): KEY is the quiet tenant B's key, KEY2 the hostile tenant A's.
Writes bench/results/hardening.json and .md.

    python bench/hardening.py [--slow 5000] [--rounds 5] [--requests 200]   # about 8 min
    python bench/hardening.py --quick --url URL --api-key B --noisy-key A   # ~20 s, no writes
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness

SLOW_KINDS = ("slow headers", "body without a key", "body with a key")
PROBE_TIMEOUT_S = 10  # a probe that gets no answer by then counts as failed, at this time
GOALS = {"probe_p99_ms": 100, "neighbour_slowdown": 2.0, "webhook_delay_s": 2.0}
# The full run's sizes, and the quick mode's (a running test app: seconds, not minutes).
FULL = {
    "slow": 5000, "rounds": 5, "requests": 200, "hooks": 30, "hold_s": 12, "trickle_s": 5,
    "flood_s": 8,
    "noisy_job_s": 2.0, "streams": 150, "noisy_hooks": 100,
}  # fmt: skip
QUICK = {
    "slow": 300, "rounds": 2, "requests": 10, "hooks": 3, "hold_s": 3.5, "trickle_s": 1,
    "flood_s": 2,
    "noisy_job_s": 0.5, "streams": 20, "noisy_hooks": 8,
}  # fmt: skip


def settings_for(home: Path):
    from busque.config import Settings

    small = {"num_cpus": 0.1}
    return Settings(
        home=home,
        model_modules=["tests.fixture_models"],  # `sleep`: a job of a chosen length
        faces={"enabled": False},
        webhooks={"allow_networks": ["127.0.0.0/8"], "timeout_s": 10},
        jobs={"poll_s": 0.05, "max_running": 16},
        serve={
            "port": harness.free_port(),
            "grpc_port": 0,
            "body_timeout_s": 60,
            "gateway": {"num_cpus": 0.2, "max_ongoing_requests": 1000},
        },
        model_deployments={
            "fixtures": {**small, "max_ongoing_requests": 64},
            **{
                name: {**small, "min_replicas": 1}  # every job kind's host up from the start
                for name in ("crashy", "utility", "textgen", "imagegen", "pipelines")
            },
        },
    )


def quantiles(times_s: list[float]) -> dict:
    return {
        "p50_ms": round(harness.percentile(times_s, 0.5) * 1000, 1),
        "p99_ms": round(harness.percentile(times_s, 0.99) * 1000, 1),
    }


def rounds_order(r: int) -> tuple[str, str]:
    """Idle then loaded in even rounds, loaded then idle in odd ones."""
    return ("idle", "loaded") if r % 2 == 0 else ("loaded", "idle")


def against_idle(runs: dict[str, list[dict]], stat: str) -> dict:
    """Per case, the interval of the rounds' `stat`; and under load against idle, paired by
    round: idle / loaded (> 1: faster loaded), its verdict, and the slowdown (loaded / idle)."""
    idle = [r[stat] for r in runs["idle"]]
    loaded = [r[stat] for r in runs["loaded"]]
    speed = harness.ratio_interval(idle, loaded)  # how many times loaded is faster than idle
    return {
        "idle": harness.median_interval(idle),
        "loaded": harness.median_interval(loaded),
        "speed_vs_idle": {**harness.scaled(speed, 1), "verdict": harness.verdict(speed)},
        "slowdown": harness.scaled(harness.ratio_interval(loaded, idle), 1),
    }


# ---- 1. slow clients -----------------------------------------------------------------------


async def hold_slow(
    host: str,
    port: int,
    kind: str,
    key: str,
    stop: asyncio.Event,
    held: list,
    answers: Counter,
    every: float,
):
    """One slow socket of `kind`, a byte (or a header line) sent `every` seconds until stopped;
    what the server answered, by kind and status, counted in `answers`."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return
    head = f"POST /v1/jobs HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1000\r\n"
    if kind == "body with a key":
        head += f"X-API-Key: {key}\r\n"
    try:
        if kind == "slow headers":
            writer.write(b"POST /v1/jobs HTTP/1.1\r\n")
        else:
            writer.write((head + "content-type: application/json\r\n\r\n{").encode())
        held.append(kind)
        while not stop.is_set():
            await asyncio.wait([asyncio.ensure_future(stop.wait())], timeout=every)
            # Answered (401, 408) and closed: the socket holds nothing any more.
            with contextlib.suppress(TimeoutError):
                answer = await asyncio.wait_for(reader.read(65536), 0.01)
                if answer.startswith(b"HTTP/1.1 "):
                    answers[f"{kind}: {answer[9:12].decode()}"] += 1
            if reader.at_eof():
                break
            writer.write(b"x-slow: 1\r\n" if kind == "slow headers" else b" ")
            await writer.drain()
    except OSError:
        pass
    finally:
        held.remove(kind)
        writer.close()


PROBES = ("healthz", "search")


async def probe(client: httpx.AsyncClient, requests: int) -> dict:
    times: dict[str, list[float]] = {name: [] for name in PROBES}
    failed = dict.fromkeys(times, 0)
    for _ in range(requests):
        for name in times:
            started = time.perf_counter()
            try:
                if name == "healthz":
                    response = await client.get("/healthz", timeout=PROBE_TIMEOUT_S)
                else:
                    response = await client.post(
                        "/v1/search", json={"phash": "978d441804f5c75a"}, timeout=PROBE_TIMEOUT_S
                    )
                failed[name] += response.status_code != 200
            except httpx.HTTPError:
                failed[name] += 1
            times[name].append(time.perf_counter() - started)
    return {name: {**quantiles(v), "failed": failed[name]} for name, v in times.items()}


async def slow_clients(target: dict, size: dict) -> dict:
    """The slow sockets are tenant A's (the noisy key); the probes are tenant B's."""
    from tqdm import tqdm

    where = urlsplit(target["url"])
    host, port = where.hostname, where.port or 80
    runs: dict[str, list[dict]] = {"idle": [], "loaded": []}
    held_counts, answered = [], []
    async with httpx.AsyncClient(
        base_url=target["url"], headers={"X-API-Key": target["quiet_key"]}, timeout=60
    ) as client:
        await probe(client, 5)  # warm up
        for r in tqdm(range(size["rounds"]), desc="slow clients", leave=False):
            for case in rounds_order(r):
                if case == "idle":
                    runs["idle"].append(await probe(client, size["requests"]))
                    continue
                stop, held, answers = asyncio.Event(), [], Counter()
                tasks = [
                    asyncio.create_task(
                        hold_slow(
                            host, port, SLOW_KINDS[i % 3], target["noisy_key"], stop, held,
                            answers, size["trickle_s"],
                        )
                    )
                    for i in range(size["slow"])
                ]  # fmt: skip
                await asyncio.sleep(size["hold_s"])  # all connected, the first trickles sent
                held_counts.append({kind: held.count(kind) for kind in SLOW_KINDS})
                answered.append(dict(sorted(answers.items())))
                runs["loaded"].append(await probe(client, size["requests"]))
                stop.set()
                await asyncio.gather(*tasks)
    out: dict = {"sockets": size["slow"], "held_open": held_counts, "answered": answered}
    for name in PROBES:
        per = {case: [r[name] for r in rs] for case, rs in runs.items()}
        out[name] = {
            "p50_ms": against_idle(per, "p50_ms"),
            "p99_ms": against_idle(per, "p99_ms"),
            "failed": {case: sum(r["failed"] for r in rs) for case, rs in per.items()},
            "rounds": per,
        }
        out[name]["goal_met"] = harness.meets(
            out[name]["p99_ms"]["loaded"], GOALS["probe_p99_ms"], higher_is_better=False
        )
    return out


# ---- 2. a noisy neighbour ------------------------------------------------------------------


async def neighbour(target: dict, size: dict) -> dict:
    from tqdm import tqdm

    requests = max(3, size["requests"] // 10)
    runs: dict[str, list[dict]] = {"idle": [], "loaded": []}
    noisy = httpx.AsyncClient(
        base_url=target["url"], headers={"X-API-Key": target["noisy_key"]}, timeout=120
    )
    quiet = httpx.AsyncClient(
        base_url=target["url"], headers={"X-API-Key": target["quiet_key"]}, timeout=120
    )

    async def quiet_jobs() -> dict:
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            response = await quiet.post(
                "/v1/jobs",
                json={"model": "sleep", "input": {"seconds": 0.2}},
                headers={"Prefer": "wait=60"},
            )
            assert response.status_code == 201, response.text
            times.append(time.perf_counter() - started)
        return quantiles(times)

    async def flood(stop: asyncio.Event):
        async def keep_queued():
            while not stop.is_set():
                await noisy.post(
                    "/v1/jobs", json={"model": "sleep", "input": {"seconds": size["noisy_job_s"]}}
                )
                await asyncio.sleep(0.03)

        async def stream():
            while not stop.is_set():
                try:
                    async with noisy.stream("GET", "/v1/events") as response:
                        if response.status_code == 429:
                            await asyncio.sleep(1)
                            continue
                        async for _ in response.aiter_lines():
                            if stop.is_set():
                                return
                except httpx.HTTPError:
                    await asyncio.sleep(0.5)

        await asyncio.gather(keep_queued(), *(stream() for _ in range(size["streams"])))

    try:
        await quiet_jobs()  # warm: the first job starts what an idle app has not
        for r in tqdm(range(size["rounds"]), desc="noisy neighbour", leave=False):
            for case in rounds_order(r):
                if case == "idle":
                    runs["idle"].append(await quiet_jobs())
                    continue
                stop = asyncio.Event()
                flooding = asyncio.create_task(flood(stop))
                await asyncio.sleep(size["flood_s"])  # the queue fills, the streams open
                runs["loaded"].append(await quiet_jobs())
                stop.set()
                # The streams end at their next event or keepalive: bounded, so a quiet stream
                # never holds the round.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(flooding), 10)
                flooding.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flooding
                await _drain(noisy)
                await asyncio.sleep(size["noisy_job_s"])  # the running ones end
    finally:
        await noisy.aclose()
        await quiet.aclose()
    out = {"jobs_per_round": requests, "rounds": runs}
    out["p50_ms"] = against_idle(runs, "p50_ms")
    out["p99_ms"] = against_idle(runs, "p99_ms")
    out["goal_met"] = harness.meets(
        out["p50_ms"]["slowdown"], GOALS["neighbour_slowdown"], higher_is_better=False
    )
    return out


async def _drain(client: httpx.AsyncClient) -> None:
    """Cancel what the flood left queued, so the next idle round is idle."""
    while True:
        page = (await client.get("/v1/jobs", params={"status": "queued", "limit": 200})).json()
        if not page["data"]:
            return
        await asyncio.gather(*(client.post(f"/v1/jobs/{j['id']}/cancel") for j in page["data"]))


# ---- 3. a trickling webhook receiver --------------------------------------------------------


class Healthy:
    def __init__(self):
        self.arrived: dict[str, float] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.arrived[body.decode()] = time.time()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class Trickler:
    """A webhook receiver that answers a byte a second, until stopped (then it hangs up, so
    the deliveries it held fail at once and their retries end quickly)."""

    def __init__(self):
        self.stopped = threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/slow"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn):
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
                while not self.stopped.wait(1):
                    conn.sendall(b"x")
            except OSError:
                return

    def stop(self):
        self.stopped.set()
        self.server.close()


async def webhooks(target: dict, size: dict) -> dict:
    from tqdm import tqdm

    healthy, trickler = Healthy(), Trickler()
    hook = {"events": ["job.result"]}
    runs: dict[str, list[list[float]]] = {"idle": [], "loaded": []}
    async with (
        httpx.AsyncClient(
            base_url=target["url"], headers={"X-API-Key": target["noisy_key"]}
        ) as noisy,
        httpx.AsyncClient(
            base_url=target["url"], headers={"X-API-Key": target["quiet_key"]}
        ) as quiet,
    ):

        async def deliveries() -> list[float]:
            delays = []
            for _ in range(size["hooks"]):
                done = await quiet.post(
                    "/v1/jobs",
                    json={"model": "echo", "webhook": {"url": healthy.url, **hook}},
                    headers={"Prefer": "wait=30"},
                )
                job = done.json()
                finished = time.time()
                while not any(job["id"] in body for body in healthy.arrived):
                    await asyncio.sleep(0.01)
                    if time.time() - finished > 60:
                        break
                arrived = next(
                    (t for b, t in healthy.arrived.items() if job["id"] in b), time.time()
                )
                delays.append(arrived - finished)
            return delays

        try:
            await deliveries()  # warm
            for _ in tqdm(range(size["rounds"]), desc="webhooks, idle", leave=False):
                runs["idle"].append(await deliveries())
            for _ in range(size["noisy_hooks"]):
                await noisy.post(
                    "/v1/jobs", json={"model": "echo", "webhook": {"url": trickler.url, **hook}}
                )
            await asyncio.sleep(2)  # the trickled attempts under way
            for _ in tqdm(range(size["rounds"]), desc="webhooks, loaded", leave=False):
                runs["loaded"].append(await deliveries())
        finally:
            trickler.stop()
            healthy.server.shutdown()
    out: dict = {"deliveries_per_round": size["hooks"], "rounds": runs}
    for case, rounds in runs.items():
        every = [d for r in rounds for d in r]
        out[case] = {
            "median_s": harness.median_interval(every),
            "max_s": round(max(every), 3),
        }
    out["loaded_vs_idle"] = harness.compare(out["loaded"]["median_s"], out["idle"]["median_s"])
    out["goal_met"] = out["loaded"]["max_s"] < GOALS["webhook_delay_s"]
    return out


# ---- the report -----------------------------------------------------------------------------


def met(flag: bool) -> str:
    return "met" if flag else "NOT met"


def report(results: dict) -> str:
    slow, noisy, hooks = results["slow_clients"], results["neighbour"], results["webhooks"]
    size = results["sizes"]
    level = slow["healthz"]["p99_ms"]["idle"]["level"]
    behind = []
    lines = [
        "# Hardening: what hostile or noisy clients cost the others",
        "",
        f"{size['rounds']} rounds per case, idle and loaded alternating (the order turns each "
        "round); figures are the median round [a "
        f"{level:.1%} distribution-free interval]. The reference is busque itself with no "
        'hostile client; "under load busque is" reads the paired per-round ratio idle / '
        "loaded: **level** when its interval holds 1 (the attack cost nothing measurable), "
        "**behind** when all of it is below 1. A goal is met only when the whole interval "
        "clears it.",
        "",
        f"## {slow['sockets']:,} slow sockets of tenant A; tenant B's probes",
        "",
        f"Goal: p99 under {GOALS['probe_p99_ms']} ms with the slow sockets held. Milliseconds; a "
        f"probe unanswered after {PROBE_TIMEOUT_S} s failed (counted at that time). "
        f"{size['requests']} probes of each kind per round.",
        "",
        "| request | idle p50 | idle p99 | loaded p50 | loaded p99 | failed (idle/loaded) "
        "| under load busque is (p99) | goal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in PROBES:
        got = slow[name]
        verdict = got["p99_ms"]["speed_vs_idle"]["verdict"]
        if verdict == "behind":
            behind.append(f"{name} p99 with slow sockets held")
        lines.append(
            f"| {name} | {harness.show(got['p50_ms']['idle'], 1)} "
            f"| {harness.show(got['p99_ms']['idle'], 1)} "
            f"| {harness.show(got['p50_ms']['loaded'], 1)} "
            f"| {harness.show(got['p99_ms']['loaded'], 1)} "
            f"| {got['failed']['idle']}/{got['failed']['loaded']} | **{verdict}** "
            f"| {met(got['goal_met'])} |"
        )
    lines += [
        "",
        f"Held open after {size['hold_s']} s (last round): {slow['held_open'][-1]}; answered by "
        f"then (kind: status): {slow['answered'][-1]}.",
        "",
        "## Tenant B's 0.2 s job while tenant A floods jobs and event streams",
        "",
        f"Goal: B's p50 within {GOALS['neighbour_slowdown']:.0f}x of idle (the slowdown's whole "
        f"interval). {noisy['jobs_per_round']} jobs per round; A keeps jobs of "
        f"{size['noisy_job_s']} s queued and {size['streams']} streams open.",
        "",
        "| figure | idle ms | A flooding ms | slowdown (loaded/idle) | under load busque is "
        "| goal |",
        "|---|---|---|---|---|---|",
    ]
    for stat in ("p50_ms", "p99_ms"):
        got = noisy[stat]
        verdict = got["speed_vs_idle"]["verdict"]
        if verdict == "behind":
            behind.append(f"B's job {stat[:3]} while A floods")
        goal = met(noisy["goal_met"]) if stat == "p50_ms" else ""
        lines.append(
            f"| {stat[:3]} | {harness.show(got['idle'], 1)} | {harness.show(got['loaded'], 1)} "
            f"| {harness.show(got['slowdown'])} | **{verdict}** | {goal} |"
        )
    idle, loaded = hooks["idle"], hooks["loaded"]
    if hooks["loaded_vs_idle"] == "behind":
        behind.append("B's webhook delay while A's receiver trickles")
    lines += [
        "",
        "## Tenant B's webhooks while tenant A's receiver trickles",
        "",
        f"Goal: every delivery under {GOALS['webhook_delay_s']:.0f} s. {size['rounds']} rounds "
        f"of {hooks['deliveries_per_round']} deliveries each, idle first, then with "
        f"{size['noisy_hooks']} of A's deliveries to a receiver answering a byte a second "
        "(their retries last minutes once queued, so these rounds cannot alternate). Unpaired "
        "intervals of every delivery's delay: overlapping is level.",
        "",
        "| case | median s [interval] | max s | under load busque is | goal |",
        "|---|---|---|---|---|",
        f"| idle | {harness.show(idle['median_s'], 3)} | {idle['max_s']} | | |",
        f"| A trickling | {harness.show(loaded['median_s'], 3)} | {loaded['max_s']} "
        f"| **{hooks['loaded_vs_idle']}** | {met(hooks['goal_met'])} |",
        "",
        "## Where busque is behind",
        "",
    ]
    goals = [
        *(f"{n} p99 under load" for n in PROBES if not slow[n]["goal_met"]),
        *(["B's job within 2x"] if not noisy["goal_met"] else []),
        *(["webhooks under 2 s"] if not hooks["goal_met"] else []),
    ]
    if behind or goals:
        lines += [f"- behind itself idle: {item}" for item in behind]
        lines += [f"- goal not met: {item}" for item in goals]
    else:
        lines.append(
            "Nowhere in this run: no attack here cost tenant B measurably, every goal met."
        )
    return "\n".join(lines) + "\n"


# ---- the run --------------------------------------------------------------------------------


def run(target: dict, size: dict) -> dict:
    loop = asyncio.new_event_loop()
    try:
        return {
            "machine": harness.machine(),
            "sizes": size,
            "slow_clients": loop.run_until_complete(slow_clients(target, size)),
            "neighbour": loop.run_until_complete(neighbour(target, size)),
            "webhooks": loop.run_until_complete(webhooks(target, size)),
        }
    finally:
        loop.close()


def main() -> None:
    ap = harness.parser(__doc__)
    ap.add_argument("--slow", type=int, help=f"slow sockets (default {FULL['slow']:,})")
    ap.add_argument("--rounds", type=int, help=f"rounds per case, >= 5 (default {FULL['rounds']})")
    ap.add_argument("--requests", type=int, help=f"probes per round (default {FULL['requests']})")
    ap.add_argument("--hooks", type=int, help=f"webhooks per round (default {FULL['hooks']})")
    ap.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK['slow']} slow sockets, {QUICK['rounds']} rounds of a few requests: a smoke "
        "test; writes nothing",
    )
    ap.add_argument("--url", help="a running busque (else this starts its own)")
    ap.add_argument("--api-key", help="with --url: the quiet tenant B's key")
    ap.add_argument("--noisy-key", help="with --url: the hostile tenant A's key")
    args = ap.parse_args()
    size = dict(QUICK if args.quick else FULL)
    for name in ("slow", "rounds", "requests", "hooks"):
        if getattr(args, name) is not None:
            size[name] = getattr(args, name)
    if not args.quick and size["rounds"] < 5:
        ap.error("--rounds: at least 5 (fewer give no interval worth the name)")
    if args.url:
        if not (args.api_key and args.noisy_key):
            ap.error("--url needs --api-key (tenant B) and --noisy-key (tenant A)")
        target = {"url": args.url, "quiet_key": args.api_key, "noisy_key": args.noisy_key}
        results = run(target, size)
    else:
        from busque.cli import _key_store
        from busque.runtime import Runtime

        harness.start_ray()
        with tempfile.TemporaryDirectory() as home:
            settings = settings_for(Path(home))
            settings.ensure_secrets()
            Runtime(settings).migrate()
            app = harness.start_app(settings)
            target = {
                "url": app.url,
                "quiet_key": _key_store(settings).create("quiet", "bench").key,
                "noisy_key": _key_store(settings).create("attacker", "bench").key,
            }
            results = run(target, size)
    harness.publish("hardening", results, report(results), args)


if __name__ == "__main__":
    main()
