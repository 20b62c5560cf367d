"""What every benchmark shares: its command line, the photos, the machine it ran on, where its
results go, a local Ray with the real app; and closed-loop load with latency summaries.

    parser(__doc__)                      argparse with the common options (--no-write)
    photo(name), photos(names)           scikit-image's sample photos + matplotlib's grace_hopper
    machine(**versions)                  CPU, cores, Python, commit, uncommitted changes, versions
    write_results(name, data, markdown)  bench/results/NAME.json (+ NAME.md), the commit stamped
    start_ray(**options), start_app(settings), free_port(), wait_for(client, job_id)
    closed_loop(one, concurrency, seconds, unit), summary(...), percentile(values, q)

A script puts the repository root on sys.path before importing this (it runs as
`python bench/NAME.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

try:
    from busque.ray_start import serve_environment
except ImportError:  # an older checkout (bench/ingest_io.py is run in those too)
    from busque.cli import serve_environment

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

# Before Ray starts and anything imports ray.serve: the Serve settings `busque serve` ships go
# into the handles a driver builds.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
serve_environment()


# ---- the command line ----


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser for a script, given its docstring (the first paragraph describes it,
    the rest is shown after the options), with the options every benchmark takes: --no-write.
    The script adds its own."""
    first, _, rest = description.strip().partition("\n\n")
    made = argparse.ArgumentParser(
        description=first,
        epilog=rest or None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    made.add_argument(
        "--no-write", action="store_true", help="print the results, leave bench/results alone"
    )
    return made


# ---- the photos ----


def photo(name: str):
    """A sample photo as an RGB Pillow image: one of scikit-image's (`skimage.data.NAME`; binary
    masks as black and white, transparency on white, a stereo pair's left view) or matplotlib's
    "grace_hopper" (a real face)."""
    import numpy as np
    from PIL import Image

    if name == "grace_hopper":
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
            return Image.open(f).convert("RGB")
    import skimage.data

    array = getattr(skimage.data, name)()
    if isinstance(array, tuple):  # stereo_motorcycle: (left, right, disparity)
        array = array[0]
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    image = Image.fromarray(array)
    if image.mode in ("RGBA", "LA"):
        image = image.convert("RGBA")
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        image = background
    return image.convert("RGB")


def photos(names) -> dict:
    """{name: photo(name)} in the order given."""
    return {name: photo(name) for name in names}


# ---- the machine and the code ----


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo; the platform's guess elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", "--no-optional-locks", *args],  # never writes the index
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def commit() -> str:
    """The checkout's commit (short), or "unknown"."""
    return _git("rev-parse", "--short", "HEAD") or "unknown"


def uncommitted(*paths: str) -> bool:
    """Whether these paths (default busque/ and pipelines/) differ from the commit, untracked
    files included."""
    return bool(_git("status", "--porcelain", "--", *(paths or ("busque", "pipelines"))))


def machine(**versions) -> dict:
    """What a benchmark ran on and which code: CPU model, cores, Python, the commit and whether
    busque/ or pipelines/ had uncommitted changes, plus the caller's library versions (or any
    other fact)."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "commit": commit(),
        "uncommitted_changes": uncommitted(),
        **versions,
    }


# ---- the results ----


def write_results(
    name: str, data: dict, markdown: str | None = None, *, write: bool = True
) -> None:
    """bench/results/NAME.json (data, with the commit stamped unless it holds one) and, given
    markdown, NAME.md; prints the markdown (the JSON without one). write=False (--no-write):
    only prints."""
    data = data if "commit" in data else {**data, "commit": commit()}
    text = json.dumps(data, indent=2) + "\n"
    if write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{name}.json").write_text(text)
        if markdown is not None:
            (RESULTS / f"{name}.md").write_text(markdown.rstrip("\n") + "\n")
    print(text if markdown is None else markdown, flush=True)


# ---- Ray and the app (busque.testing: what the tests start, too) ----


def start_ray(**options) -> None:
    """A local Ray for a benchmark, with the Serve settings `busque serve` ships (set before Ray
    starts) and the small footprint the tests use; `options` go to ray.init (e.g. num_gpus)."""
    from busque.ray_start import SMALL_LOCAL_RAY, start_local_ray

    start_local_ray(**{**SMALL_LOCAL_RAY, **options})


def start_app(settings):
    """The real app on Ray Serve, started as `busque serve` starts it; returns a
    busque.testing.app.App (url, admin_key, client())."""
    from busque.testing.app import start_app

    return start_app(settings)


def free_port() -> int:
    from busque.testing.servers import free_port

    return free_port()


def wait_for(client, job_id: str, timeout: float = 30) -> dict:
    """Long-poll a job until it is terminal."""
    from busque.testing.app import wait_for

    return wait_for(client, job_id, timeout)


# ---- load ----


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(latencies_s: list[float], elapsed: float, unit: str, count: int | None = None):
    """p50/p99/mean of the calls and `unit`s per second (count: units done, default one a call)."""
    ms = [v * 1000 for v in latencies_s]
    count = len(ms) if count is None else count
    return {
        "requests": len(ms),
        unit: count,
        "seconds": round(elapsed, 2),
        f"{unit}_per_s": round(count / elapsed, 1),
        "p50_ms": round(percentile(ms, 0.50), 2),
        "p99_ms": round(percentile(ms, 0.99), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


async def closed_loop(one, concurrency: int, seconds: float, unit: str) -> dict:
    """`concurrency` workers each await `one(i)` back to back for `seconds` (i counts calls)."""
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds
    counter = iter(range(10**12))

    async def worker():
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            await one(next(counter))
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return summary(latencies, time.perf_counter() - started, unit)
