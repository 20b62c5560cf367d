"""Search by image, end to end over HTTP: busque against the server a user would write instead
(FastAPI + uvicorn running the same model and a FAISS index in process), and busque's
`@serve.batch` on against off, all side by side in one run.

The peer is bench/peers/search_fastapi.py: a FastAPI app under uvicorn with 2 workers (one per
core, as FastAPI's docs advise for CPU-bound work), EfficientNet-Lite0 loaded once per worker
at startup, the photos in a FAISS IndexFlatIP, POST /search multipart. It is what a Python
developer ships for "find similar images" before reaching for Ray; plain Ray Serve with
@serve.batch would be busque's own Embedder again. It takes busque's shortcuts (reduced-scale
JPEG decoding, busque's model code) and does less (no auth, catalog, pHash or hybrid index).

Photos: scikit-image's samples, ingested through POST /v1/ingest (faces off for the
collection); queries: the same photos transformed (JPEG q50; brightness x1.2), POST
/v1/search multipart with `k` and `collection`. Cases run interleaved: every round runs each
case once per concurrency, in an order that turns each round, for --seconds each; figures are
medians over rounds with distribution-free intervals, comparisons paired per round. The mean
batch size is what busque reports for each query (its Server-Timing `embed-model` entry).

Without --url the script starts Ray and two busque apps in one cluster: "busque" (the shipped
embedder settings: batch_size 16, batch_wait_s 0) and "busque, batching off" (batch_size 1,
under /unbatched), and the Embedder of each alone through a Serve handle (where a load
does queue at the model). With --url it benches that deployment as it is (a fresh collection; the
key needs media:write and search) against the peer, and batching off is not run.
--ingress direct|haproxy: Serve's direct ingress or HAProxy for the busque app (its own
cluster settings; batching off is not run). Writes bench/results/search.json, .md and .png
(search_<ingress>, search_wait<N>ms, search_cuda for the variants).

    python bench/search.py                       # full: 7 rounds x 4 s, concurrency 1 and 32
    python bench/search.py --batch-wait-ms 10    # batches given Ray's default wait to fill
    python bench/search.py --url URL --api-key K # a running deployment
    python bench/search.py --quick --no-write    # 4 photos, 5 short rounds (with --url: ~20 s)
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from PIL import Image, ImageEnhance

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness

PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "camera",
    "horse",
    "moon",
    "coins",
    "brick",
    "clock",
    "colorwheel",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "logo",
    "page",
    "retina",
    "text",
    "stereo_motorcycle",
)
QUICK_PHOTOS = PHOTOS[:4]
K = 3
BUSQUE, UNBATCHED, PEER = "busque", "busque, batching off", "FastAPI + FAISS (2 workers)"
HANDLE, HANDLE_OFF = "busque's Embedder alone (handle)", "busque's Embedder alone, batching off"
# Which cases each comparison pairs: (busque's side, the other).
PAIRS = ((BUSQUE, PEER), (BUSQUE, UNBATCHED), (HANDLE, HANDLE_OFF))
UNBATCHED_PREFIX = "/unbatched"
BATCH = re.compile(r'embed-model;[^,]*desc="batch of (\d+)"')
VERDICTS = ("ahead", "level", "behind")


# ---- the photos ----


def jpeg(image: Image.Image, quality: int = 90, size: int = 512) -> bytes:
    image = image.copy()
    image.thumbnail((size, size))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def photo_set(names) -> tuple[dict[str, bytes], list[tuple[str, bytes]]]:
    """Originals to ingest ({name: 512 px JPEG}) and queries ([(name, transformed JPEG)])."""
    originals, queries = {}, []
    for name, image in harness.photos(names).items():
        originals[name] = jpeg(image)
        queries.append((name, jpeg(image, quality=50)))
        queries.append((name, jpeg(ImageEnhance.Brightness(image).enhance(1.2), quality=85)))
    return originals, queries


# ---- busque: its apps, the photos ingested ----


def settings_for(
    home: Path, port: int, batch_size: int, device: str, app_name: str = "busque", wait_s=0.0
):
    from busque.config import Settings

    small = {"num_cpus": 0.25, "max_ongoing_requests": 64}
    front = {"num_cpus": 0.25, "max_ongoing_requests": 1000}
    deployments = {name: small for name in ("embedder", "matcher", "ingest", "utility")}
    if device != "cpu":
        deployments["embedder"] = {**small, "num_gpus": 1}
    return Settings(
        home=home,
        embedder={"device": device, "batch_size": batch_size, "batch_wait_s": wait_s},
        serve={
            "port": port,
            "grpc_port": 0,  # no gRPC here (a fixed port + 1 may be taken)
            "gateway": front,
            "dispatcher": front,
            "app_name": app_name,
        },
        model_deployments=deployments,
        quotas={"requests_per_s": 0},  # one tenant at full speed: no per-tenant rate limit
    )


def start_busque(home: Path, device: str, unbatched: bool, wait_s: float = 0.0):
    """Ray and the app (batching as shipped) as `busque serve` starts them; with `unbatched`,
    a second app on the same catalog and Serve proxy with batch_size 1 (under /unbatched).
    Returns (App, {case: base url})."""
    from ray import serve

    from busque.serve.app import build_app
    from busque.serve.direct_ingress import direct_ports

    harness.start_ray(**({"num_gpus": 1} if device != "cpu" else {}))
    port = harness.free_port()
    settings = settings_for(home, port, 16, device, wait_s=wait_s)
    app = harness.start_app(settings)
    direct = (
        direct_ports(settings.serve.app_name, timeout_s=5)
        if os.environ.get("RAY_SERVE_ENABLE_DIRECT_INGRESS") == "1"
        else []
    )
    urls = {BUSQUE: f"http://127.0.0.1:{direct[0]}" if direct else app.url}
    if unbatched:
        other = settings_for(home, port, 1, device, app_name="busque-unbatched")
        serve.run(build_app(other), name=other.serve.app_name, route_prefix=UNBATCHED_PREFIX)
        urls[UNBATCHED] = app.url + UNBATCHED_PREFIX
        with httpx.Client(timeout=10) as client:
            deadline = time.monotonic() + 120
            while client.get(urls[UNBATCHED] + "/readyz").status_code != 200:
                assert time.monotonic() < deadline, "the unbatched app did not become ready"
                time.sleep(0.3)
    return app, urls


def stop_busque() -> None:
    """The cluster is this run's own: stopping Ray stops the apps (serve.shutdown would try the
    handles' event loop, closed by now)."""
    import ray

    ray.shutdown()


def ingest(url: str, key: str, collection: str, originals: dict[str, bytes]) -> dict[str, str]:
    """The photos through POST /v1/ingest (faces off for the collection), every job waited for;
    {media_id: name}."""
    with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60) as client:
        done = client.put(f"/v1/collections/{collection}", json={"faces": False})
        assert done.status_code == 200, done.text
        accepted = {}
        for name, data in originals.items():
            response = client.post(
                "/v1/ingest",
                files={"image": (f"{name}.jpg", data, "image/jpeg")},
                data={"collection": collection, "metadata": json.dumps({"name": name})},
            )
            assert response.status_code == 202, response.text
            accepted[name] = response.json()
        for name, media in accepted.items():
            job = harness.wait_for(client, media["job_id"], timeout=300)
            assert job["status"] == "succeeded", (name, job)
    return {m["media_id"]: name for name, m in accepted.items()}


# ---- the peer ----


def start_peer(originals: dict[str, bytes], folder: Path, workers: int, device: str):
    """uvicorn serving bench/peers/search_fastapi.py; (process, url). Ready later:
    harness.wait_uvicorn."""
    for name, data in originals.items():
        (folder / f"{name}.jpg").write_bytes(data)
    env = {
        "BENCH_SEARCH_PHOTOS": str(folder),
        "BENCH_SEARCH_DEVICE": device,
        "BENCH_SEARCH_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    return harness.start_uvicorn("bench.peers.search_fastapi:app", env, workers)


# ---- one request of each kind ----


class Target:
    """A case: where its requests go and how to read its answers."""

    def __init__(self, name: str, url: str, key: str | None, collection: str, handle=None):
        self.name, self.url, self.key, self.collection = name, url, key, collection
        self.peer = name == PEER
        self.handle = handle  # the Embedder alone, through a Serve handle from this driver
        self.batches: list[int] = []
        self.stages: dict[str, list[float]] = {}  # busque's Server-Timing, ms per stage

    async def call(self, client: httpx.AsyncClient, data: bytes, media: dict[str, str]) -> int:
        """One query; how many matches it found (the handle: 1 for a 1280-d vector)."""
        if self.handle is not None:
            out = await self.handle.embed.remote(data, True)
            self.batches.append(out["timing"]["batch"])
            return int(len(out["vector"]) == 1280)
        return len(self.names(await client.post(**self.request(data)), media))

    def request(self, data: bytes, k: int = K) -> dict:
        if self.peer:
            return {
                "url": self.url + "/search",
                "files": {"image": ("q.jpg", data)},
                "data": {"k": str(k)},
            }
        return {
            "url": self.url + "/v1/search",
            "files": {"image": ("q.jpg", data, "image/jpeg")},
            "data": {"collection": self.collection, "k": str(k)},
            "headers": {"X-API-Key": self.key},
        }

    def names(self, response: httpx.Response, media: dict[str, str]) -> list[str]:
        """The matched photos' names, best first; notes busque's batch size."""
        assert response.status_code == 200, response.text
        matches = response.json()["matches"]
        if self.peer:
            return [m["name"] for m in matches]
        from busque.api.timing import parse_server_timing

        header = response.headers.get("server-timing", "")
        found = BATCH.search(header)
        if found:
            self.batches.append(int(found.group(1)))
        for stage, ms in parse_server_timing(header).items():
            self.stages.setdefault(stage, []).append(ms)
        return [media.get(m["media_id"], "?") for m in matches]


def top1(target: Target, queries, media: dict[str, str], k: int) -> dict:
    """Every query once, in turn: the share whose top match is its original. Waits (up to 60 s)
    for busque's Matcher to have caught up with the catalog first."""
    with httpx.Client(timeout=60) as client:
        deadline = time.monotonic() + 60
        while len(target.names(client.post(**target.request(queries[0][1], k)), media)) < k:
            assert time.monotonic() < deadline, f"{target.name} never served the collection"
            time.sleep(0.3)
        hits = [
            target.names(client.post(**target.request(data, k)), media)[:1] == [name]
            for name, data in queries
        ]
    target.batches.clear()
    return {"hits": sum(hits), "queries": len(hits)}


async def measure(targets, queries, media, concurrencies, seconds, rounds, warmup) -> dict:
    """Every target at every concurrency, `rounds` times, interleaved; one closed loop of
    `seconds` each. {target: {concurrency: [per-round summary]}}."""
    from tqdm import tqdm

    limits = httpx.Limits(max_connections=max(concurrencies) + 8)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def loop(target: Target, concurrency: int, span: float) -> dict:
            target.batches.clear()
            target.stages.clear()

            async def one(i: int):
                _, data = queries[i % len(queries)]
                found = await target.call(client, data, media)
                assert found == (1 if target.handle else K), (target.name, found)

            case = await harness.closed_loop(one, concurrency, span, "images")
            if target.batches:
                case["batch_mean"] = round(sum(target.batches) / len(target.batches), 3)
            if target.stages:
                case["stages_p50_ms"] = {
                    stage: round(statistics.median(ms), 3) for stage, ms in target.stages.items()
                }
            return case

        for target in targets:  # warm: models, connections, the Matchers' indexes
            await loop(target, max(concurrencies), warmup)
        samples = {t.name: {c: [] for c in concurrencies} for t in targets}
        for r in tqdm(range(rounds), desc="rounds", leave=False, mininterval=1.0):
            for concurrency in concurrencies:
                for k in range(len(targets)):
                    target = targets[(r + k) % len(targets)]
                    samples[target.name][concurrency].append(
                        await loop(target, concurrency, seconds)
                    )
    return samples


# ---- the figures ----


def summarise(samples: dict, concurrencies) -> dict:
    """Medians and intervals of each case at each concurrency, and the paired comparisons."""
    cases = {}
    for name, by in samples.items():
        cases[name] = {}
        for c in concurrencies:
            rounds = by[c]
            row = {
                key: harness.median_interval([r[key] for r in rounds])
                for key in ("images_per_s", "p50_ms", "p99_ms")
            }
            if all("batch_mean" in r for r in rounds):
                row["batch_mean"] = harness.median_interval([r["batch_mean"] for r in rounds])
            if all("stages_p50_ms" in r for r in rounds):  # medians over rounds of each p50
                row["stages_p50_ms"] = {
                    stage: round(
                        statistics.median(r["stages_p50_ms"].get(stage, 0) for r in rounds), 2
                    )
                    for stage in rounds[0]["stages_p50_ms"]
                }
            cases[name][str(c)] = row

    def series(name, c, key):
        return [r[key] for r in samples[name][c]]

    comparisons = []
    for mine, other in PAIRS:
        if mine not in samples or other not in samples:
            continue
        for c in concurrencies:
            speed = harness.ratio_interval(
                series(mine, c, "images_per_s"), series(other, c, "images_per_s")
            )
            latency = harness.ratio_interval(series(other, c, "p50_ms"), series(mine, c, "p50_ms"))
            comparisons.append(
                {
                    "busque": mine,
                    "busque_vs": other,
                    "concurrency": c,
                    "throughput_ratio": speed,
                    "throughput_verdict": harness.verdict(speed),
                    "p50_speedup": latency,
                    "p50_verdict": harness.verdict(latency),
                }
            )
    return {"cases": cases, "comparisons": comparisons}


def floors(samples: dict, concurrencies) -> list[dict]:
    """busque's two floors, each met only when its whole interval clears it."""
    low, high = min(concurrencies), max(concurrencies)
    out = []
    overhead = harness.median_interval(
        [
            b["p50_ms"] - p["p50_ms"]
            for b, p in zip(samples[BUSQUE][low], samples[PEER][low], strict=True)
        ]
    )
    out.append(
        {
            "floor": f"busque's p50 over the FastAPI peer's at concurrency {low} <= 15 ms",
            "measured": overhead,
            "unit": "ms",
            "met": harness.meets(overhead, 15, higher_is_better=False),
        }
    )
    if UNBATCHED in samples:
        ratio = harness.ratio_interval(
            [r["images_per_s"] for r in samples[BUSQUE][high]],
            [r["images_per_s"] for r in samples[UNBATCHED][high]],
        )
        out.append(
            {
                "floor": f"batching on / off, images/s at concurrency {high} >= 1.5x",
                "measured": ratio,
                "unit": "x",
                "met": harness.meets(ratio, 1.5),
            }
        )
    return out


def plot(data: dict, path: Path) -> None:
    plt = harness.pyplot()
    concurrencies = data["concurrencies"]
    names = list(data["summary"]["cases"])
    fig, axes = plt.subplots(
        1,
        len(concurrencies),
        sharey=True,
        figsize=(3.5 * len(concurrencies) + 3, 0.45 * len(names) + 1.6),
    )
    axes = axes if len(concurrencies) > 1 else [axes]
    for ax, c in zip(axes, concurrencies, strict=True):
        rows = [data["summary"]["cases"][n][str(c)]["images_per_s"] for n in names]
        medians = [r["median"] for r in rows]
        errors = [
            [m - r["low"] for m, r in zip(medians, rows, strict=True)],
            [r["high"] - m for m, r in zip(medians, rows, strict=True)],
        ]
        ax.barh(range(len(names)), medians, xerr=errors, capsize=4, color="#4c72b0")
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_title(f"concurrency {c}")
        ax.set_xlabel("images/s (median, interval)")
    axes[0].invert_yaxis()  # busque on top (the y axis is shared)
    fig.suptitle("POST search by image: busque vs FastAPI + FAISS")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def page(data: dict) -> str:
    s, concurrencies = data["summary"], data["concurrencies"]
    rounds, seconds = data["rounds"], data["seconds_per_case"]
    lines = [
        "# Search by image: busque against FastAPI + FAISS, batching on against off",
        "",
        f"POST search by image (multipart, k={K}) over HTTP, {data['photos']} scikit-image "
        f"photos indexed, {data['queries']} transformed queries (JPEG q50; brightness x1.2). "
        f"busque: {data['busque']}. Peer: bench/peers/search_fastapi.py under uvicorn "
        f"({data['peer_workers']} workers, one torch thread each; the same EfficientNet-Lite0, "
        "reduced-scale JPEG decoding, FAISS IndexFlatIP in process; no auth, catalog, pHash or "
        f"hybrid index). Cases interleaved: {rounds} rounds, each runs every case at every "
        f"concurrency for {seconds:g} s (closed loop; the order turns each round) after a "
        f"{data['warmup_s']:g} s warm-up; medians over rounds with their intervals "
        "(distribution-free, at the level shown in search.json). Device: "
        f"{data['device']}.",
        "",
        "## Every case, interleaved",
        "",
        "| case | concurrency | images/s | p50 ms | p99 ms | mean batch | top-1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, by in s["cases"].items():
        hits = data["top1"].get(name)
        top = f"{hits['hits']}/{hits['queries']}" if hits else "-"
        for c in concurrencies:
            row = by[str(c)]
            batch = harness.show(row["batch_mean"]) if "batch_mean" in row else "-"
            lines.append(
                f"| {name} | {c} | {harness.show(row['images_per_s'], 1)} "
                f"| {harness.show(row['p50_ms'], 1)} | {harness.show(row['p99_ms'], 1)} "
                f"| {batch} | {top} |"
            )
    lines += [
        "",
        "## busque against each",
        "",
        "Paired per round: throughput = busque's images/s / the other's; p50 = the other's p50 "
        "/ busque's (above 1: busque faster). ahead/level/behind as the whole interval says.",
        "",
        "| busque | vs | concurrency | throughput | verdict | p50 latency | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in s["comparisons"]:
        lines.append(
            f"| {row['busque']} | {row['busque_vs']} | {row['concurrency']} "
            f"| {harness.show(row['throughput_ratio'])} | **{row['throughput_verdict']}** "
            f"| {harness.show(row['p50_speedup'])} | **{row['p50_verdict']}** |"
        )
    lines += ["", "## Floors", "", "| floor | measured | met |", "|---|---|---|"]
    for row in data["floors"]:
        lines.append(
            f"| {row['floor']} | {harness.show(row['measured'])} {row['unit']} "
            f"| {'yes' if row['met'] else 'no'} |"
        )
    behind = [
        f"- {row['busque']} vs {row['busque_vs']} at concurrency {row['concurrency']}: {what} "
        f"{harness.show(row[key])}"
        for row in s["comparisons"]
        for what, key, word in (
            ("throughput", "throughput_ratio", "throughput_verdict"),
            ("p50 latency", "p50_speedup", "p50_verdict"),
        )
        if row[word] == "behind"
    ]
    lines += ["", "## Where busque is behind", ""]
    if behind:
        total = 2 * len(s["comparisons"])
        lines += [f"Behind in {len(behind)} of {total} comparisons:", *behind]
    else:
        lines.append("Nowhere in this run.")
    lines += ["", "## Reading", "", *notes(data)]
    if data.get("skipped"):
        lines += ["", *[f"Skipped: {line}" for line in data["skipped"]]]
    return "\n".join(lines)


def notes(data: dict) -> list[str]:
    s, high = data["summary"]["cases"], str(max(data["concurrencies"]))
    out = []
    mine = s[BUSQUE][high]
    if "batch_mean" in mine:
        batch = mine["batch_mean"]["median"]
        out.append(
            f"- At concurrency {high} a busque query ran in an Embedder batch of {batch:.2f} on "
            "average (busque's own Server-Timing `embed-model` entry; at most 16). "
            + (
                "Batches hardly form (with batch_wait_s 0 a batch is what queued while the "
                "previous forward pass ran)."
                if batch < 1.5
                else "Batches form; whether they pay depends on what a batch saves on "
                "this device (bench/results/embed.json)."
            )
        )
    low = str(min(data["concurrencies"]))
    stages = s[BUSQUE][low].get("stages_p50_ms")
    if stages:
        out.append(
            f"- Where a busque query's time goes at concurrency {low} (its Server-Timing "
            "header, p50 ms, median over rounds): "
            + ", ".join(f"{stage} {ms}" for stage, ms in stages.items())
            + f"; the client saw {s[BUSQUE][low]['p50_ms']['median']:.1f} ms, the peer "
            f"{s[PEER][low]['p50_ms']['median']:.1f} ms."
        )
    if HANDLE in s:
        on, off = s[HANDLE][high], s[HANDLE_OFF][high]
        out.append(
            f"- The Embedder alone (Serve handle calls from the benchmark's driver, no HTTP, "
            f"Gateway or Matcher) at concurrency {high}: batches of "
            f"{on['batch_mean']['median']:.2f} on average, {harness.show(on['images_per_s'], 1)} "
            f"images/s against {harness.show(off['images_per_s'], 1)} with batching off: what "
            "batching buys the model where queries do queue at it."
        )
    out.append(
        "- The peer does less per query than busque (no API key check, quota, catalog read, "
        "signed URLs, pHash or hybrid index) and runs no Ray: its figures are the cost of the "
        "model work plus one plain HTTP hop, the least a server can do for the same answer."
    )
    out.append(
        "- busque's cost over it is Ray Serve's: the proxy, the Gateway fetching the body back "
        "from it, one handle call each to the Embedder and the Matcher (bench/results/"
        "serve_hop.md has what one call costs here)."
    )
    return out


# ---- the run ----


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--url", help="bench the busque at this URL instead of starting one")
    parser.add_argument("--api-key", help="its API key (media:write and search), with --url")
    parser.add_argument("--quick", action="store_true", help="4 photos, 5 short rounds")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (>= 5)")
    parser.add_argument("--seconds", type=float, default=4, help="seconds per case per round")
    parser.add_argument("--warmup", type=float, default=3, help="warm-up seconds per case")
    parser.add_argument(
        "--concurrency", default="1,32", help="closed-loop concurrencies, comma-separated"
    )
    parser.add_argument("--peer-workers", type=int, default=2, help="uvicorn workers")
    parser.add_argument(
        "--batch-wait-ms",
        type=float,
        default=0.0,
        help="own app only: the batched app's embedder.batch_wait_s, ms (busque ships 0; "
        "Ray Serve's @serve.batch defaults to 10)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (own app only)")
    parser.add_argument(
        "--ingress",
        choices=("proxy", "direct", "haproxy"),
        default="proxy",
        help="own app only: Serve's proxy (as `busque serve`), direct ingress (the Gateway "
        "replica's own port) or Serve's HAProxy; the last two skip batching off",
    )
    args = parser.parse_args()
    if args.url and not args.api_key:
        parser.error("--url needs --api-key")
    if args.quick:
        args.rounds, args.seconds, args.warmup = 5, 0.4, 0.6
        args.concurrency = "1,8"
    if args.ingress != "proxy" and not args.url:
        flag = "DIRECT_INGRESS" if args.ingress == "direct" else "HA_PROXY"
        if os.environ.get(f"RAY_SERVE_ENABLE_{flag}") != "1":  # before Ray and Serve start
            env = {**os.environ, f"RAY_SERVE_ENABLE_{flag}": "1"}
            env["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] = "1"
            os.execve(sys.executable, [sys.executable, *sys.argv], env)
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    originals, queries = photo_set(QUICK_PHOTOS if args.quick else PHOTOS)
    collection = f"bench-search-{uuid.uuid4().hex[:8]}"
    skipped = []

    with tempfile.TemporaryDirectory() as tmp:
        peer, peer_url = start_peer(originals, Path(tmp), args.peer_workers, args.device)
        started_busque = False
        try:
            if args.url:
                urls, key = {BUSQUE: args.url.rstrip("/")}, args.api_key
                busque = f"the deployment at {args.url} as it runs"
                skipped.append("busque with batching off: --url benches one deployment as is.")
            else:
                unbatched = args.ingress == "proxy"
                wait_s = args.batch_wait_ms / 1000
                app, urls = start_busque(Path(tmp) / "busque", args.device, unbatched, wait_s)
                started_busque, key = True, app.admin_key
                busque = (
                    "a local Ray and the app as `busque serve` starts it (Embedder batch_size "
                    f"16, batch_wait_s {wait_s:g}; every deployment 0.25 CPU), through "
                    + {
                        "proxy": "Serve's proxy",
                        "direct": "Serve's direct ingress",
                        "haproxy": "Serve's HAProxy ingress",
                    }[args.ingress]
                    + (
                        "; batching off: a second app (batch_size 1) on the same proxy, catalog "
                        "and cluster"
                        if unbatched
                        else ""
                    )
                )
                if not unbatched:
                    skipped.append(f"busque with batching off: --ingress {args.ingress}.")
            media = ingest(urls[BUSQUE], key, collection, originals)
            harness.wait_uvicorn(peer, peer_url, args.peer_workers)
            targets = [Target(name, url, key, collection) for name, url in urls.items()]
            targets.append(Target(PEER, peer_url, None, collection))
            k = min(K, len(originals))
            hits = {t.name: top1(t, queries, media, k) for t in targets}
            if UNBATCHED in urls:  # the model alone: where a load forms batches
                from ray import serve

                for name, app_name in ((HANDLE, "busque"), (HANDLE_OFF, "busque-unbatched")):
                    handle = serve.get_deployment_handle("Embedder", app_name)
                    targets.append(Target(name, "", None, collection, handle))
            print("measuring ...", flush=True)
            samples = asyncio.run(
                measure(
                    targets, queries, media, concurrencies, args.seconds, args.rounds, args.warmup
                )
            )
        finally:
            peer.terminate()
            peer.wait(30)
            if started_busque:
                stop_busque()

    import faiss
    import fastapi
    import ray
    import torch
    import uvicorn

    data = {
        "benchmark": "search by image over HTTP: busque vs FastAPI + FAISS, batching on vs off",
        "busque": busque,
        "peer_workers": args.peer_workers,
        "device": args.device,
        "ingress": "given URL" if args.url else args.ingress,
        "photos": len(originals),
        "queries": len(queries),
        "k": K,
        "rounds": args.rounds,
        "seconds_per_case": args.seconds,
        "warmup_s": args.warmup,
        "concurrencies": concurrencies,
        "top1": hits,
        "summary": summarise(samples, concurrencies),
        "floors": floors(samples, concurrencies),
        "samples": {n: {str(c): v for c, v in by.items()} for n, by in samples.items()},
        "skipped": skipped,
        "versions": {
            "ray": ray.__version__,
            "torch": torch.__version__,
            "faiss": faiss.__version__,
            "fastapi": fastapi.__version__,
            "uvicorn": uvicorn.__version__,
        },
    }
    name = "search" if args.device == "cpu" else f"search_{args.device}"
    if args.ingress != "proxy":
        name += f"_{args.ingress}"
    if args.batch_wait_ms and not args.url:
        name += f"_wait{args.batch_wait_ms:g}ms"
    harness.publish(name, data, page(data), args, plot)


if __name__ == "__main__":
    main()
