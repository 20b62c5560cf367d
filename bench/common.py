"""What the benchmarks share: closed-loop load, latency summaries, machine facts, sample photos."""

from __future__ import annotations

import asyncio
import platform
import statistics
import time
from pathlib import Path

from busque.cli import serve_environment

# Before anything imports ray.serve: a driver's Serve settings go into the handles it builds.
serve_environment()


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


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo; the platform's guess elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine(**extra) -> dict:
    """What a benchmark ran on: CPU model, cores, Python, plus the caller's library versions."""
    import os

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        **extra,
    }


def start_ray(**options) -> None:
    """A local Ray for a benchmark, with the Serve settings `busque serve` ships (set before Ray
    starts) and the small footprint the tests use; `options` go to ray.init (e.g. num_gpus)."""
    import ray

    ray.init(
        address="local",
        num_cpus=4,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=200 * 2**20,
        _node_ip_address="127.0.0.1",
        **options,
    )


def skimage_photo(name: str):
    """One of scikit-image's sample photos as an RGB Pillow image (binary masks as black and
    white, transparency on white, a stereo pair's left view)."""
    import numpy as np
    import skimage.data
    from PIL import Image

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
