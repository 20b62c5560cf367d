"""What every benchmark shares: its command line, the photos, the machine it ran on, where its
results go, a local Ray with the real app; and closed-loop load with latency summaries.

    parser(__doc__)                      argparse with the common options (--no-write)
    photo(name), photos(names)           scikit-image's sample photos + matplotlib's grace_hopper
    machine(**versions)                  CPU, cores, Python, commit, uncommitted changes, versions
    write_results(name, data, markdown)  bench/results/NAME.json (+ NAME.md), stamped with the
                                         run: commit, dirty tree, load average, command line
    publish(name, data, markdown, args, plot)   the same, as --no-write/--quick say, + NAME.png
    interleaved(cases, repeats)          cases timed A, B, C, A, B, C... (wall and CPU seconds)
    median_interval(samples)             median + distribution-free interval (binomial order
                                         statistics), the level it achieves for this n
    ratio_interval(base, other)          the same of paired per-round ratios (a speedup)
    meets(interval, floor), compare(a, b), verdict(ratio)   ahead / level / behind
    start_ray(**options), start_app(settings), free_port(), wait_for(client, job_id)
    closed_loop(one, concurrency, seconds, unit), summary(...), percentile(values, q)

A script puts the repository root on sys.path before importing this (it runs as
`python bench/NAME.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

try:
    from busque.ray_start import serve_environment
except ImportError:  # an older checkout (bench/ingest_io.py is run in those too)
    from busque.cli import serve_environment

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
# When this run began (the harness is imported first thing): its load average is the machine's
# before the benchmark loaded it.
STARTED = time.time()
LOAD_AT_START = os.getloadavg()

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
    busque/ or pipelines/ had uncommitted changes, the load average (1, 5, 15 min) when the run
    began, plus the caller's library versions (or any other fact)."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "commit": commit(),
        "uncommitted_changes": uncommitted(),
        "load_average_at_start": [round(v, 2) for v in LOAD_AT_START],
        **versions,
    }


def command_line() -> str:
    """The command that reproduces this run, from the repository root: `python bench/NAME.py`
    and the options it was given."""
    script = Path(sys.argv[0]).resolve()
    try:
        shown = str(script.relative_to(ROOT))
    except ValueError:
        shown = sys.argv[0]
    return shlex.join(["python", shown, *hide_keys(sys.argv[1:])])


def hide_keys(argv: list[str]) -> list[str]:
    """The options with the value of every --...-key option (an API key: --api-key K,
    --api-key=K) replaced by KEY, so no result page holds a secret."""
    out, secret = [], False
    for arg in argv:
        if secret:
            out.append("KEY")
        elif arg.startswith("--") and arg.split("=", 1)[0].endswith("-key") and "=" in arg:
            out.append(arg.split("=", 1)[0] + "=KEY")
        else:
            out.append(arg)
        secret = not secret and arg.startswith("--") and "=" not in arg and arg.endswith("-key")
    return out


def run_facts() -> dict:
    """What every result records about its run: the commit, whether the tree (any tracked or
    untracked file but the venv and bench/results) differed from it, CPU and cores, the load average when the run
    began and when it ended, its wall time and the command that reproduces it."""
    return {
        "commit": commit(),
        # Results written earlier in the same sequence of runs do not make the code differ.
        "tree_dirty": bool(
            _git("status", "--porcelain", "--", ".", ":(exclude).venv", ":(exclude)bench/results")
        ),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_average_at_start": [round(v, 2) for v in LOAD_AT_START],
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        "seconds": round(time.time() - STARTED, 1),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(STARTED)),
        "command": command_line(),
    }


def run_footer(run: dict) -> str:
    """The line every results page ends with: commit, machine, load, command."""
    start, end = run["load_average_at_start"][0], run["load_average_at_end"][0]
    dirty = " with uncommitted changes" if run["tree_dirty"] else ""
    return (
        f"Run {run['date']} at commit {run['commit']}{dirty} on {run['cores']} cores "
        f"({run['cpu']}), load average {start:.2f} at the start, {end:.2f} at the end, "
        f"{run['seconds']:.0f} s. Reproduce: `{run['command']}`."
    )


# ---- the results ----


def write_results(
    name: str, data: dict, markdown: str | None = None, *, write: bool = True
) -> None:
    """bench/results/NAME.json (data, with the commit stamped unless it holds one, and the
    run's facts under "run": see run_facts) and, given markdown, NAME.md, which ends with the
    run's line (commit, load average, command); prints the markdown (the JSON without one).
    write=False (--no-write): only prints."""
    data = data if "commit" in data else {**data, "commit": commit()}
    run = run_facts()
    data = {**data, "run": run}
    if markdown is not None:
        markdown = markdown.rstrip("\n") + "\n\n" + run_footer(run) + "\n"
    text = json.dumps(data, indent=2) + "\n"
    if write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{name}.json").write_text(text)
        if markdown is not None:
            (RESULTS / f"{name}.md").write_text(markdown.rstrip("\n") + "\n")
    print(text if markdown is None else markdown, flush=True)


def publish(name: str, data: dict, markdown: str, args, plot=None) -> None:
    """A script's results, as its command line says: written (write_results, and given
    plot(data, path), bench/results/NAME.png) unless --no-write or --quick (quick figures
    never replace real ones); printed either way."""
    write = not args.no_write and not getattr(args, "quick", False)
    if write and plot is not None:
        plot(data, RESULTS / f"{name}.png")
    write_results(name, data, markdown, write=write)


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no display), for a results plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ---- statistics: repeated, interleaved measurements ----


def interleaved(cases: dict, repeats: int = 5, *, warmup: int = 1, desc: str = "rounds") -> dict:
    """Time every case `repeats` times, interleaved: each round runs every case once (A, B, C,
    then B, C, A: the order turns each round, so no case always runs first or after the same
    one), after `warmup` untimed rounds. cases: {name: fn()}. Returns {name: {"wall_s":
    [...], "cpu_s": [...]}}, one sample a round (CPU: this process's user + system time, which
    other load on the machine leaves alone where wall time does not)."""
    if repeats < 5:
        raise ValueError("at least 5 repetitions: fewer give no interval worth the name")
    from tqdm import tqdm

    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    samples = {name: {"wall_s": [], "cpu_s": []} for name in names}
    for r in tqdm(range(repeats), desc=desc, leave=False, mininterval=1.0):
        for k in range(len(names)):
            name = names[(r + k) % len(names)]
            cpu, wall = time.process_time(), time.perf_counter()
            cases[name]()
            samples[name]["wall_s"].append(time.perf_counter() - wall)
            samples[name]["cpu_s"].append(time.process_time() - cpu)
    return samples


def _binomial_half_cdfs(n: int) -> list[float]:
    """P(Binomial(n, 1/2) <= j) for j = 0 .. n // 2, in one pass (in logs: 2**n overflows a
    float past n = 1023, and exact integers make every call quadratic in n)."""
    log_all = n * math.log(2)
    log_n = math.lgamma(n + 1)
    total, out = 0.0, []
    for j in range(n // 2 + 1):
        total += math.exp(log_n - math.lgamma(j + 1) - math.lgamma(n - j + 1) - log_all)
        out.append(total)
    return out


def median_interval(samples, level: float = 0.95) -> dict:
    """The median of repeated measurements and a distribution-free confidence interval for it:
    the order statistics [x(k), x(n+1-k)] with the largest k whose coverage, 1 - 2 P(Bin(n, 1/2)
    <= k-1), is still >= `level`. Few samples cannot reach every level: n=5 gives [min, max] at
    93.75%, n=6 96.9%, n=9 [2nd, 8th] at 96.1%; "level" says what this interval achieves."""
    ordered = sorted(float(v) for v in samples)
    n = len(ordered)
    if not n:
        raise ValueError("no samples")
    cdf = _binomial_half_cdfs(n)
    k = 1
    for candidate in range(1, n // 2 + 1):
        if 1 - 2 * cdf[candidate - 1] >= level:
            k = candidate
        else:
            break
    return {
        "median": statistics.median(ordered),
        "low": ordered[k - 1],
        "high": ordered[n - k],
        "level": round(1 - 2 * cdf[k - 1], 4),
        "n": n,
    }


def ratio_interval(base, other, level: float = 0.95) -> dict:
    """How many times `other` is faster than `base` (base / other), round by round (paired:
    the samples of one interleaved round were taken under the same load), as median_interval."""
    if len(base) != len(other):
        raise ValueError("paired samples: one of each per round")
    return median_interval([b / o for b, o in zip(base, other, strict=True)], level)


def scaled(interval: dict, factor: float, digits: int = 3) -> dict:
    """The interval with median, low and high multiplied (seconds -> ms per item, say)."""
    return {
        **interval,
        **{k: round(interval[k] * factor, digits) for k in ("median", "low", "high")},
    }


def meets(interval: dict, floor: float, higher_is_better: bool = True) -> bool:
    """A floor (or claim) is met only when the whole interval clears it."""
    return interval["low"] >= floor if higher_is_better else interval["high"] <= floor


def verdict(ratio: dict) -> str:
    """A speedup's interval (ratio_interval) read plainly: "ahead" when all of it is above 1,
    "behind" when all of it is below, "level" when it holds 1."""
    if ratio["low"] > 1:
        return "ahead"
    if ratio["high"] < 1:
        return "behind"
    return "level"


def compare(a: dict, b: dict, lower_is_better: bool = True) -> str:
    """Two unpaired intervals: a is "ahead" of b when they do not overlap and a is the better
    side, "behind" when b is, "level" when they overlap."""
    if a["high"] < b["low"]:
        return "ahead" if lower_is_better else "behind"
    if a["low"] > b["high"]:
        return "behind" if lower_is_better else "ahead"
    return "level"


def show(interval: dict, digits: int = 2) -> str:
    """'9.76 [9.50, 10.1]' for a table."""
    return (
        f"{interval['median']:.{digits}f} "
        f"[{interval['low']:.{digits}f}, {interval['high']:.{digits}f}]"
    )


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


def start_uvicorn(app: str, env: dict, workers: int) -> tuple[subprocess.Popen, str]:
    """A peer's FastAPI app (`module:app`) under uvicorn, as its docs run it in production;
    (process, url). Ready once wait_uvicorn returns."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers), "--log-level", "warning", "--no-access-log"]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env})
    return process, f"http://127.0.0.1:{port}"


def wait_uvicorn(process: subprocess.Popen, url: str, workers: int, timeout: float = 120) -> None:
    """Until every worker has started (each answers GET /healthz only after its startup)."""
    import httpx

    deadline = time.monotonic() + timeout
    answered = 0
    with httpx.Client(timeout=5) as client:
        while answered < 4 * workers:
            assert process.poll() is None, f"the peer at {url} exited"
            assert time.monotonic() < deadline, f"the peer at {url} did not start"
            try:
                answered += client.get(url + "/healthz").status_code == 200
            except httpx.TransportError:
                time.sleep(0.3)


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
