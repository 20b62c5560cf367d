"""Hardening benchmark: what hostile or noisy clients cost the others, through the real app on
loopback (it starts its own busque on a local Ray and stops by itself).

1. Slow clients: `--slow` sockets (default 5,000) of tenant A held open against the Serve port, a
   third each sending headers a byte every few seconds, a body without a key, and a body with
   A's key, a byte every few seconds. Meanwhile, and before them, `GET /healthz` and a small search
   (`POST /v1/search` by pHash) of tenant B, one at a time: p50/p99. Goal: both under 100 ms
   p99.
2. A noisy neighbour: tenant B submits a 0.2 s job and waits for it (`Prefer: wait`), alone and
   while tenant A keeps 64 jobs of 2 s queued and holds its event streams open. B's latency;
   goal: within 2x of idle.
3. A trickling webhook receiver: tenant A's jobs deliver to a receiver that answers a byte a
   second, tenant B's to a healthy one: the delay from B's job ending to its webhook arriving;
   goal: under 2 s.

Cases 1 and 2 alternate idle and loaded rounds (`--rounds`), medians of the rounds' p50/p99 with
their range. Writes bench/results/hardening.json and .md.

    python bench/hardening.py [--slow 5000] [--rounds 3] [--requests 200]
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness

LOOP = asyncio.new_event_loop()
SLOW_KINDS = ("slow headers", "body without a key", "body with a key")


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
            **{name: small for name in ("crashy", "utility", "textgen", "imagegen", "pipelines")},
        },
    )


# ---- 1. slow clients -----------------------------------------------------------------------


async def hold_slow(
    host: str, port: int, kind: str, key: str, stop: asyncio.Event, held: list, answers: Counter
):
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
            await asyncio.wait([asyncio.ensure_future(stop.wait())], timeout=5)
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


PROBE_TIMEOUT_S = 10  # a probe that gets no answer by then counts as failed, at this time


async def probe(client: httpx.AsyncClient, requests: int) -> dict:
    times: dict[str, list[float]] = {"healthz": [], "search": []}
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
    return {
        name: {
            "p50_ms": round(harness.percentile(v, 0.5) * 1000, 1),
            "p99_ms": round(harness.percentile(v, 0.99) * 1000, 1),
            "failed": failed[name],
        }
        for name, v in times.items()
    }


async def slow_clients(app, attacker_key: str, count: int, rounds: int, requests: int) -> dict:
    """The slow sockets are tenant A's (the attacker's key); the probes are tenant B's."""
    host, port = "127.0.0.1", app.settings.serve.port
    runs: dict[str, list[dict]] = {"idle": [], "loaded": []}
    held_counts, answered = [], []
    async with httpx.AsyncClient(
        base_url=app.url, headers={"X-API-Key": app.admin_key}, timeout=60
    ) as client:
        await probe(client, 20)  # warm up
        for _ in range(rounds):
            runs["idle"].append(await probe(client, requests))
            stop, held, answers = asyncio.Event(), [], Counter()
            tasks = [
                asyncio.create_task(
                    hold_slow(host, port, SLOW_KINDS[i % 3], attacker_key, stop, held, answers)
                )
                for i in range(count)
            ]
            await asyncio.sleep(12)  # all connected, the first trickles sent and answered
            held_counts.append({kind: held.count(kind) for kind in SLOW_KINDS})
            answered.append(dict(sorted(answers.items())))
            runs["loaded"].append(await probe(client, requests))
            stop.set()
            await asyncio.gather(*tasks)
    return {"sockets": count, "held_open": held_counts, "answered": answered, **_medians(runs)}


def _medians(runs: dict[str, list[dict]]) -> dict:
    out = {}
    for case, results in runs.items():
        out[case] = {
            name: {
                stat: {
                    "median": statistics.median(r[name][stat] for r in results),
                    "range": [
                        min(r[name][stat] for r in results),
                        max(r[name][stat] for r in results),
                    ],
                }
                for stat in results[0][name]
            }
            for name in results[0]
        }
    return out


# ---- 2. a noisy neighbour ------------------------------------------------------------------


async def neighbour(app, quiet_key: str, rounds: int, requests: int) -> dict:
    runs: dict[str, list[dict]] = {"idle": [], "loaded": []}
    noisy = httpx.AsyncClient(base_url=app.url, headers={"X-API-Key": app.admin_key}, timeout=120)
    quiet = httpx.AsyncClient(base_url=app.url, headers={"X-API-Key": quiet_key}, timeout=120)

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
        return {
            "job": {
                "p50_ms": round(harness.percentile(times, 0.5) * 1000, 1),
                "p99_ms": round(harness.percentile(times, 0.99) * 1000, 1),
            }
        }

    async def flood(stop: asyncio.Event):
        async def keep_queued():
            while not stop.is_set():
                await noisy.post("/v1/jobs", json={"model": "sleep", "input": {"seconds": 2}})
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

        await asyncio.gather(keep_queued(), *(stream() for _ in range(150)))

    try:
        for _ in range(rounds):
            runs["idle"].append(await quiet_jobs())
            stop = asyncio.Event()
            flooding = asyncio.create_task(flood(stop))
            await asyncio.sleep(8)  # the queue fills, the streams open
            runs["loaded"].append(await quiet_jobs())
            stop.set()
            await flooding
            await _drain(noisy)
    finally:
        await noisy.aclose()
        await quiet.aclose()
    return _medians(runs)


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


def trickler() -> tuple[str, socket.socket]:
    server = socket.create_server(("127.0.0.1", 0), backlog=512)

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=trickle, args=(conn,), daemon=True).start()

    def trickle(conn):
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
                while True:
                    time.sleep(1)
                    conn.sendall(b"x")
            except OSError:
                return

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{server.getsockname()[1]}/slow", server


async def webhooks(app, quiet_key: str, jobs: int) -> dict:
    healthy = Healthy()
    slow_url, slow_server = trickler()
    hook = {"events": ["job.result"]}
    delays = []
    async with (
        httpx.AsyncClient(base_url=app.url, headers={"X-API-Key": app.admin_key}) as noisy,
        httpx.AsyncClient(base_url=app.url, headers={"X-API-Key": quiet_key}) as quiet,
    ):
        for _ in range(100):
            await noisy.post(
                "/v1/jobs", json={"model": "echo", "webhook": {"url": slow_url, **hook}}
            )
        await asyncio.sleep(2)  # the trickled attempts under way
        for _ in range(jobs):
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
            arrived = next((t for b, t in healthy.arrived.items() if job["id"] in b), time.time())
            delays.append(arrived - finished)
    slow_server.close()
    healthy.server.shutdown()
    return {
        "deliveries": len(delays),
        "p50_s": round(harness.percentile(delays, 0.5), 3),
        "p99_s": round(harness.percentile(delays, 0.99), 3),
        "max_s": round(max(delays), 3),
    }


def report(results: dict) -> str:
    slow, noisy, hooks = results["slow_clients"], results["neighbour"], results["webhooks"]
    lines = [
        f"# Hardening ({results['machine']['commit']})",
        "",
        f"## {slow['sockets']:,} slow sockets (goal: healthz and a small search under 100 ms p99)",
        "",
        f"Held open after 12 s, per round: {slow['held_open']}",
        "",
        f"Answered by then (kind: status), per round: {slow.get('answered')}",
        "",
        f"Milliseconds; a probe unanswered after {PROBE_TIMEOUT_S} s failed (counted at that time).",
        "",
        "| request | idle p50 | idle p99 | with slow sockets p50 | p99 | failed |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in ("healthz", "search"):
        idle, loaded = slow["idle"][name], slow["loaded"][name]
        lines.append(
            f"| {name} | {idle['p50_ms']['median']} | {idle['p99_ms']['median']} "
            f"| {loaded['p50_ms']['median']} | {loaded['p99_ms']['median']} "
            f"| {loaded['failed']['median']} |"
        )
    idle, loaded = noisy["idle"]["job"], noisy["loaded"]["job"]
    ratio = loaded["p50_ms"]["median"] / idle["p50_ms"]["median"]
    lines += [
        "",
        "## Tenant B's 0.2 s job while tenant A floods jobs and streams (goal: within 2x)",
        "",
        f"- idle: p50 {idle['p50_ms']['median']} ms, p99 {idle['p99_ms']['median']} ms",
        f"- A flooding: p50 {loaded['p50_ms']['median']} ms, p99 {loaded['p99_ms']['median']} ms"
        f" ({ratio:.2f}x at p50)",
        "",
        "## Tenant B's webhooks while tenant A's receiver trickles (goal: under 2 s)",
        "",
        f"- {hooks['deliveries']} deliveries: p50 {hooks['p50_s']} s, p99 {hooks['p99_s']} s, "
        f"max {hooks['max_s']} s",
        "",
        "Medians of the rounds; ranges in hardening.json.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = harness.parser(__doc__)
    ap.add_argument("--slow", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--hooks", type=int, default=30)
    args = ap.parse_args()
    from busque.cli import _key_store

    harness.start_ray()
    with tempfile.TemporaryDirectory() as home:
        settings = settings_for(Path(home))
        settings.ensure_secrets()
        from busque.runtime import Runtime

        Runtime(settings).migrate()
        app = harness.start_app(settings)
        quiet_key = _key_store(settings).create("quiet", "bench").key
        attacker_key = _key_store(settings).create("attacker", "bench").key
        results = {
            "machine": harness.machine(),
            "slow_clients": LOOP.run_until_complete(
                slow_clients(app, attacker_key, args.slow, args.rounds, args.requests)
            ),
            "neighbour": LOOP.run_until_complete(
                neighbour(app, quiet_key, args.rounds, max(10, args.requests // 10))
            ),
            "webhooks": LOOP.run_until_complete(webhooks(app, quiet_key, args.hooks)),
        }
    harness.write_results("hardening", results, report(results), write=not args.no_write)


if __name__ == "__main__":
    main()
