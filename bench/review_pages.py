"""The web app's review pages with 100,000 items in a collection: the response time of the
gallery's first page (GET /v1/media, with and without filters) and of the duplicates view
(GET /v1/duplicates, a page of 20 groups with their items), through the real app on Ray Serve.

The items are written straight into the catalog (the ingest path is measured elsewhere:
bench/search.py, bench/backfill.py): pHashes with the bit rates of real photos, embeddings of
the embedder's size, a tenth near copies and a twentieth turned copies (bench/grouping.py's
library), capture dates and cameras in the metadata, then an index snapshot published (as
`busque reindex` does after a bulk import). The duplicates view's first call starts
the Matcher's search of every pair and answers with the groups found so far (`complete:
false`); timed: that answer, how long until the search is complete, then the view warm (the
groups kept between calls: a version check of the pairs and of the catalog), and after each of
a few resolves (the catalog changed: the groups computed again from the kept pairs).
Times are client-side on the same machine (HTTP and Serve's proxy included),
so they bound the server time from above; calls interleaved, medians with a ~95% interval.

The peer for the gallery: the API a user would write instead (bench/peers/gallery_fastapi.py:
FastAPI under uvicorn with 2 workers, plain SQL on the same SQLite file, the same filters and
fields), its calls interleaved with busque's, checked to answer the same items; busque's time
over the peer's per round, read as ahead, level or behind. No peer serves the duplicates view:
grouping a library is compared with imagededup in bench/grouping.py.
Writes bench/results/review_pages.json and .md.

    python bench/review_pages.py [--items 100000] [--repeat 30] [--quick]
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness
from bench.grouping import library, real_bit_rates

COLLECTION = "big"
CAMERAS = ("Canon EOS 5D", "NIKON D750", "Apple iPhone 12", "SONY ILCE-7M3", "Pixel 7")
GOAL_MS = 300
PEER = "FastAPI + SQL (bench/peers/gallery_fastapi.py)"
PEER_APP = "bench.peers.gallery_fastapi:app"
PEER_WORKERS = 2  # uvicorn workers, one per core (as bench/search.py's peer)
DIM = 1280  # EfficientNet-Lite0's embeddings, the default embedder's


def settings_for(home: Path):
    from busque.config import Settings

    # The job kinds' hosts and generators stay on demand (busque's defaults): never called here.
    return Settings(
        home=home,
        faces={"enabled": False},
        # This library is codes and vectors, no pixels: nothing to check pair by pair (the
        # check's cost per photo and per pair: bench/duplicates.py).
        index={"min_pixel_agreement": None},
        serve={"port": harness.free_port(), "grpc_port": 0},
    )


def fill(settings, tenant: str, n: int, dim: int) -> None:
    """n indexed items in COLLECTION, written in bulk with their change-log rows."""
    from sqlalchemy import insert

    from busque.db.engine import make_engine
    from busque.db.schema import media, media_changes
    from busque.ids import new_id
    from busque.media.catalog import index_id, vector_to_bytes

    data = library(n, dim, real_bit_rates())
    signed = data["codes"].view(np.int64)  # the catalog keeps a pHash as a signed integer
    rng = random.Random(7)
    engine = make_engine(settings.database.url)
    now = time.time()
    for start in range(0, n, 5000):
        rows, changes = [], []
        for i in range(start, min(n, start + 5000)):
            media_id = new_id("med")
            day = rng.randrange(0, 20 * 365)
            rows.append(
                {
                    "id": media_id,
                    "tenant_id": tenant,
                    "collection": COLLECTION,
                    "index_id": index_id(media_id),
                    "state": "indexed",
                    "sha256": os.urandom(32).hex(),
                    "phash": int(signed[i]),
                    "phash_variants": data["turns"][i].astype(">u8").tobytes(),
                    "width": 4000,
                    "height": 3000,
                    "format": "jpeg",
                    "bytes": rng.randrange(1_000_000, 6_000_000),
                    "metadata": {
                        "captured_at": time.strftime(
                            "%Y-%m-%dT%H:%M:%S", time.gmtime(1.1e9 + day * 86400)
                        ),
                        "camera": rng.choice(CAMERAS),
                    },
                    "labels": [],
                    "original_key": f"{tenant}/originals/{media_id}.jpg",
                    "normalized_key": f"{tenant}/normalized/{media_id}.jpg",
                    "thumbnail_key": f"{tenant}/thumbs/{media_id}.webp",
                    "embedding": vector_to_bytes(data["vectors"][i]),
                    "embedding_model": "efficientnet-lite0",
                    "embedding_version": "1",
                    "created_at": now,
                    "indexed_at": now,
                    "updated_at": now,
                }
            )
            changes.append(
                {
                    "tenant_id": tenant,
                    "collection": COLLECTION,
                    "media_id": media_id,
                    "op": "add",
                    "created_at": now,
                }
            )
        with engine.begin() as conn:
            conn.execute(insert(media), rows)
            conn.execute(insert(media_changes), changes)
        print(f"catalogued {min(n, start + 5000):,} of {n:,}", flush=True)
    engine.dispose()


def snapshot(settings, tenant: str) -> None:
    """The collection's index built and published, as `busque reindex` does after a bulk
    import (a Matcher would otherwise replay 100,000 change-log entries one page at a time)."""
    from busque.runtime import Runtime
    from pipelines.reindex import reindex

    started = time.perf_counter()
    done = reindex(Runtime(settings), tenant, COLLECTION)
    print(f"snapshot {done['version']}: {done['count']:,} items, {done['index_kind']}, "
          f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip


def timed(client: httpx.Client, path: str, **params) -> tuple[float, dict]:
    started = time.perf_counter()
    response = client.get(path, params=params)
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return elapsed, response.json()


def summary(values: list[float]) -> dict:
    interval = harness.median_interval(values)
    return {
        "runs": len(values),
        "median_ms": interval["median"],
        "low_ms": interval["low"],
        "high_ms": interval["high"],
        "level": interval["level"],
    }


def main() -> None:
    cli = harness.parser(__doc__)
    cli.add_argument("--items", type=int, default=100_000, help="items in the collection")
    cli.add_argument("--repeat", type=int, default=30, help="calls of each warm case")
    cli.add_argument("--resolves", type=int, default=5, help="resolves timed after")
    cli.add_argument("--quick", action="store_true", help="5,000 items, 5 calls (a smoke test)")
    args = cli.parse_args()
    if args.quick:
        args.items, args.repeat, args.resolves = 5000, 5, 2
    from ray import serve

    home = Path(tempfile.mkdtemp(prefix="busque-review-"))
    settings = settings_for(home)
    harness.start_ray()
    app = harness.start_app(settings)
    results: dict = {}
    peer = None
    try:
        with app.client() as client:
            client.timeout = 1800
            tenant = client.get("/v1/me").json()["tenant_id"]
            fill(settings, tenant, args.items, DIM)
            snapshot(settings, tenant)
            env = {"BENCH_GALLERY_DB": settings.database.url, "BENCH_GALLERY_TENANT": tenant}
            peer, peer_url = harness.start_uvicorn(PEER_APP, env, PEER_WORKERS)
            harness.wait_uvicorn(peer, peer_url, PEER_WORKERS)
            with httpx.Client(base_url=peer_url, timeout=60) as peer_client:
                results = measure(client, peer_client, args)
    finally:
        if peer is not None:
            peer.terminate()
            peer.wait(30)
        serve.delete(settings.serve.app_name)
    write(results, args)


def measure(client: httpx.Client, peer: httpx.Client, args) -> dict:
    first_page = {"collection": COLLECTION, "limit": 60}
    cases = {
        "gallery, first page": first_page,
        "gallery, camera filter": {**first_page, "camera": "nikon"},
        "gallery, one year": {**first_page, "since": "2015-01-01", "until": "2016-01-01"},
        "duplicates view": {"collection": COLLECTION, "limit": 20},
    }
    galleries = [name for name in cases if name.startswith("gallery")]
    page = client.get("/v1/media", params=first_page).json()  # the Matcher and pools warm up
    assert len(page["data"]) == 60, page
    for name in galleries:  # the peer answers the same page, or its times mean nothing
        ours = [item["id"] for item in client.get("/v1/media", params=cases[name]).json()["data"]]
        theirs = [item["id"] for item in peer.get("/media", params=cases[name]).json()["data"]]
        assert ours == theirs and ours, f"{name}: the peer's page differs from busque's"
    # The first call starts the Matcher's pair search and answers after index.duplicates_wait_s
    # with what it has (complete: false); the view asks again until the search is done.
    started = time.perf_counter()
    first, found = timed(client, "/v1/duplicates", **cases["duplicates view"])
    while not found["complete"]:
        time.sleep(2)
        _, found = timed(client, "/v1/duplicates", **cases["duplicates view"])
        print(f"duplicates: {found['total_groups']} groups so far", flush=True)
    # The Matcher catches up with the change log in the background: a search is done once
    # the index holds every item (its answer then stops changing).
    while True:
        time.sleep(2)
        _, again = timed(client, "/v1/duplicates", **cases["duplicates view"])
        if again["total_groups"] == found["total_groups"] and again["complete"]:
            break
        found = again
    complete_s = time.perf_counter() - started
    print(f"duplicates: first answer {first:.0f} ms, all groups after {complete_s:.0f} s")
    runs: dict[str, list[float]] = {name: [] for name in cases}
    peer_runs: dict[str, list[float]] = {name: [] for name in galleries}
    for _ in range(args.repeat):  # A, A', B, B', C, C', D, A, A'...
        for name, params in cases.items():
            path = "/v1/duplicates" if name == "duplicates view" else "/v1/media"
            runs[name].append(timed(client, path, **params)[0])
            if name in peer_runs:
                peer_runs[name].append(timed(peer, "/media", **params)[0])
    after_resolve = []
    for _ in range(min(args.resolves, len(found["groups"]))):
        group = found["groups"][0]
        done = client.post(
            "/v1/duplicates/resolve",
            json={"collection": COLLECTION, "groups": [{"media_ids": group["media_ids"]}]},
        )
        done.raise_for_status()
        elapsed, found = timed(client, "/v1/duplicates", **cases["duplicates view"])
        after_resolve.append(elapsed)
    return {
        "items": args.items,
        "groups": found["total_groups"],
        "duplicates_first_answer_ms": first,
        "duplicates_complete_s": complete_s,
        "cases": {name: summary(values) for name, values in runs.items()},
        "duplicates after a resolve": summary(after_resolve),
        "peer": {
            "name": PEER,
            "workers": PEER_WORKERS,
            "cases": {name: summary(values) for name, values in peer_runs.items()},
            # how many times faster busque answers than the peer, paired by round
            "busque_speedup": {
                name: harness.ratio_interval(peer_runs[name], runs[name]) for name in galleries
            },
        },
    }


def write(results: dict, args) -> None:
    rows = [
        *[(name, stats) for name, stats in results["cases"].items()],
        ("duplicates view, after a resolve", results["duplicates after a resolve"]),
    ]
    lines = [
        f"# The review pages at {results['items']:,} items",
        "",
        f"{results['groups']:,} duplicate groups. The duplicates view's first call answers in "
        f"{results['duplicates_first_answer_ms'] / 1000:,.1f} s with the groups found so far "
        f"(`complete: false`: the Matcher searches every pair in the background); all of them "
        f"are there after {results['duplicates_complete_s']:,.0f} s. Calls reuse the groups "
        f"computed from the pairs and the catalog until either changes (a resolve: the last "
        f"row).",
        "",
        "## Each page's time",
        "",
        "| page | calls | median ms | ~95% interval ms | under 300 ms |",
        "|---|---:|---:|---:|---|",
    ]
    for name, stats in rows:
        met = "yes" if stats["high_ms"] < GOAL_MS else "no"
        lines.append(
            f"| {name} | {stats['runs']} | {stats['median_ms']:.1f} | "
            f"{stats['low_ms']:.1f}-{stats['high_ms']:.1f} | {met} |"
        )
    peer = results["peer"]
    lines += [
        "",
        f"## The gallery against the one a user would write: {peer['name']}",
        "",
        f"uvicorn with {peer['workers']} workers, plain SQL on the same SQLite file, the same "
        "filters and fields, checked to answer the same items; its calls interleaved with "
        "busque's. It skips API keys and tenants, signed URLs and reading the embedding column "
        "(busque's catalog reads whole rows).",
        "",
        "| page | busque median ms | peer median ms | busque's speedup | busque is |",
        "|---|---:|---:|---:|---|",
    ]
    for name, speedup in peer["busque_speedup"].items():
        ours, theirs = results["cases"][name], peer["cases"][name]
        lines.append(
            f"| {name} | {ours['median_ms']:.1f} | {theirs['median_ms']:.1f} "
            f"[{theirs['low_ms']:.1f}, {theirs['high_ms']:.1f}] | {harness.show(speedup)} | "
            f"**{harness.verdict(speedup)}** |"
        )
    lines += [
        "",
        "No peer serves the duplicates view: finding the groups of a library is compared with "
        "imagededup in grouping.md.",
    ]
    harness.publish(
        "review_pages", {"machine": harness.machine(), **results}, "\n".join(lines), args
    )


if __name__ == "__main__":
    main()
