"""Idle memory of `busque serve` (the README's command, on its embedded defaults, where the
generators, the FaceAnalyzer and the hosts of rare job kinds scale to zero), against the same
`busque serve` with those deployments kept warm (min_replicas 1: the no-scale-to-zero
configuration, the reference: there is no peer that serves the same models, and what a user
weighs is the memory scale-to-zero saves against the cold start it costs).

Each run starts `busque serve` from a checkout (default this one; --repo runs another, e.g. a git
worktree of an older commit, with this venv) on a fresh home, waits until /readyz answers and every
replica is up, then --settle seconds, and sums the memory of every process it started (the local
Ray's servers, Serve's controller and proxies, one process per replica): RSS, which counts shared
libraries (torch) once per process, and PSS, which splits them between the processes that share
them (the honest total). Then a text job: the first one after idle starts the TextGenerator where
it scaled to zero, a second one finds it warm. The two configurations alternate (the order turns
each round) for --repeats rounds (>= 5); figures are medians with distribution-free intervals, and
the defaults against the warm reference are paired per round and read as ahead / level / behind.
imagegen and shapegen stay on demand in both (no weights for them on a plain machine).
Writes bench/results/idle_memory.json and .md.

    python bench/idle_memory.py [--repeats 5]      # this checkout; about 25-30 min on 2 cores
    python bench/idle_memory.py --repo /tmp/old --name idle_memory_before
    python bench/idle_memory.py --quick            # 1 round, echo jobs; ~3 min, writes nothing
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness

TEXT_MODEL = "smollm2-135m-instruct"
# Kept warm in the reference: the on-demand deployments whose models this machine has.
KEPT_WARM = ("textgen", "textembed", "pipelines", "utility", "faceanalyzer")
CASES = ("defaults (scale to zero)", "kept warm (min_replicas 1)")


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children[parent].append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def memory(pid: int) -> tuple[str, int, int] | None:
    """(label, RSS bytes, PSS bytes) of a process, or None if it is gone."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    fields = {m[1]: int(m[2]) * 1024 for m in re.finditer(r"^(\w+):\s+(\d+) kB", rollup, re.M)}
    return label(title), fields.get("Rss", 0), fields.get("Pss", 0)


def label(title: str) -> str:
    """A process's role: a Serve replica's deployment, a Ray server, or its program."""
    if "ServeReplica:" in title:
        return "replica " + title.split("ServeReplica:")[1].split()[0].split(":")[-1]
    if title.startswith("ray::"):
        return title.split()[0]
    for name in ("gcs_server", "raylet", "dashboard", "log_monitor", "monitor.py", "runtime_env"):
        if name in title:
            return name
    if "busque" in title and "serve" in title:
        return "busque serve (driver)"
    return Path(title.split()[0]).name if title else "?"


def sample(pid: int) -> dict:
    rows = [m for m in map(memory, descendants(pid)) if m is not None]
    by_label: dict[str, dict] = defaultdict(lambda: {"processes": 0, "rss": 0, "pss": 0})
    for name, rss, pss in rows:
        entry = by_label[name]
        entry["processes"] += 1
        entry["rss"] += rss
        entry["pss"] += pss
    return {
        "processes": len(rows),
        "rss_bytes": sum(r[1] for r in rows),
        "pss_bytes": sum(r[2] for r in rows),
        "by_role": dict(sorted(by_label.items(), key=lambda kv: -kv[1]["pss"])),
    }


def job_seconds(client, model: str, request: dict) -> float:
    started = time.perf_counter()
    created = client.post("/v1/jobs", json={"model": model, **request})
    created.raise_for_status()
    job = harness.wait_for(client, created.json()["id"], timeout=600)
    assert job["status"] == "succeeded", job
    return time.perf_counter() - started


JOBS = {  # the model a run times, cold then warm: --quick times the cheap echo
    "text": (TEXT_MODEL, {"input": {"prompt": "Hi"}, "params": {"max_new_tokens": 4}}),
    "echo": ("echo", {"input": {"hello": 1}}),
}


def warm_deployments() -> str:
    """BUSQUE_MODEL_DEPLOYMENTS for the reference: every KEPT_WARM deployment as busque ships it,
    but with one replica always up."""
    from busque.config import DEFAULT_DEPLOYMENTS

    return json.dumps(
        {
            name: DEFAULT_DEPLOYMENTS[name].model_dump(exclude_unset=True)
            | {"min_replicas": 1, "downscale_to_zero_delay_s": None}
            for name in KEPT_WARM
        }
    )


def run(repo: Path, settle_s: float, case: str, job: str) -> dict:
    import httpx

    home = Path(tempfile.mkdtemp(prefix="busque-idle-"))
    port, grpc = harness.free_port(), harness.free_port()
    env = {
        **os.environ,
        "BUSQUE_HOME": str(home),
        "BUSQUE_SERVE__PORT": str(port),
        "BUSQUE_SERVE__GRPC_PORT": str(grpc),
        "PYTHONPATH": str(repo),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    if case == CASES[1]:
        env["BUSQUE_MODEL_DEPLOYMENTS"] = warm_deployments()
    log = open(home / "serve.log", "w")  # noqa: SIM115 - kept open for the subprocess's life
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "busque.cli", "serve"],
        cwd=repo,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=30) as client:
            deadline = time.time() + 900
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"busque serve exited: {(home / 'serve.log').read_text()}")
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.time() > deadline:
                    raise TimeoutError("busque serve was not ready in 15 minutes")
                time.sleep(1)
            ready_s = time.perf_counter() - started
            # /readyz can answer while replicas are still in Serve's initialize call (seen with
            # the kept-warm models): the idle sample waits for every replica to be up.
            while starting(sample(proc.pid)) and time.time() < deadline:
                time.sleep(1)
            replicas_up_s = time.perf_counter() - started
            time.sleep(settle_s)
            idle = sample(proc.pid)
            client.headers["X-API-Key"] = (home / "admin.key").read_text().strip()
            model, request = JOBS[job]
            first = job_seconds(client, model, request)
            second = job_seconds(client, model, request)
            serving = sample(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    return {
        "case": case,
        "ready_s": round(ready_s, 1),
        "replicas_up_s": round(replicas_up_s, 1),
        "idle": idle,
        "first_job_s": round(first, 2),
        "second_job_s": round(second, 2),
        "after_jobs": serving,
    }


def starting(taken: dict) -> list[str]:
    """The replicas of a sample still starting (in Serve's initialize call)."""
    return [
        role for role in taken["by_role"] if role.startswith("replica ") and ".initialize" in role
    ]


# (figure, how a run gives it, digits)
FIGURES = {
    "idle PSS GiB": (lambda r: r["idle"]["pss_bytes"] / 2**30, 2),
    "idle RSS GiB": (lambda r: r["idle"]["rss_bytes"] / 2**30, 2),
    "idle processes": (lambda r: r["idle"]["processes"], 0),
    "ready s (/readyz)": (lambda r: r["ready_s"], 1),
    "every replica up s": (lambda r: r["replicas_up_s"], 1),
    "first job s": (lambda r: r["first_job_s"], 2),
    "second job s": (lambda r: r["second_job_s"], 2),
    "PSS after the jobs GiB": (lambda r: r["after_jobs"]["pss_bytes"] / 2**30, 2),
}


def summarise(runs: list[dict]) -> dict:
    """Per case, each figure's median and interval; per figure, the defaults against the warm
    reference paired by round (warm / defaults: > 1 means the defaults use less), and the
    verdict."""
    by_case = {case: [r for r in runs if r["case"] == case] for case in CASES}
    out: dict = {"cases": {}, "defaults_vs_warm": {}}
    for case, mine in by_case.items():
        out["cases"][case] = {
            name: harness.median_interval([get(r) for r in mine])
            for name, (get, _) in FIGURES.items()
        }
    for name, (get, _) in FIGURES.items():
        defaults = [max(get(r), 1e-9) for r in by_case[CASES[0]]]
        warm = [max(get(r), 1e-9) for r in by_case[CASES[1]]]
        ratio = harness.ratio_interval(warm, defaults)
        out["defaults_vs_warm"][name] = {
            **harness.scaled(ratio, 1),
            "verdict": harness.verdict(ratio),
        }
    return out


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def markdown(data: dict) -> str:
    summary = data["summary"]
    job = "text" if data["job"] == "text" else "echo"
    level = summary["defaults_vs_warm"]["idle PSS GiB"]["level"]
    lines = [
        f"# Idle memory of `busque serve` ({data['code']}): scale to zero against kept warm",
        "",
        f"{data['repeats']} rounds, the two configurations alternating (a fresh `busque serve` "
        f"each), sampled {data['settle_s']} s after /readyz answered and every replica was up; "
        f"the first and second {job} job after that. Figures: the median run [a {level:.1%} "
        f"distribution-free interval]. The reference keeps {', '.join(KEPT_WARM)} at one "
        "replica (min_replicas 1), as a deployment without scale-to-zero would; imagegen and "
        "shapegen stay on demand in both.",
        "",
        "| figure | " + " | ".join(CASES) + " | defaults: warm / defaults [interval] | so "
        "the defaults are |",
        "|---|---|---|---|---|",
    ]
    for name, (_, digits) in FIGURES.items():
        cells = [harness.show(summary["cases"][case][name], digits) for case in CASES]
        ratio = summary["defaults_vs_warm"][name]
        lines.append(
            f"| {name} | {cells[0]} | {cells[1]} | {harness.show(ratio)} | **{ratio['verdict']}** |"
        )
    behind = [n for n, r in summary["defaults_vs_warm"].items() if r["verdict"] == "behind"]
    lines += [
        "",
        'Lower is better for every figure; "ahead" means the defaults\' whole interval is '
        "lower than the warm reference's, paired by round.",
        "",
        "Where busque's defaults are behind: "
        + (
            ", ".join(behind)
            + " (the price of scale-to-zero: the first job after idle starts its deployment)."
            if behind
            else "nowhere in this run."
        ),
        "",
    ]
    for case in CASES:
        last = [r for r in data["runs"] if r["case"] == case][-1]
        lines += [
            f"## {case}: memory by role (the last run, idle)",
            "",
            "| role | processes | RSS | PSS |",
            "|---|---:|---:|---:|",
        ]
        for role, entry in last["idle"]["by_role"].items():
            lines.append(
                f"| {role} | {entry['processes']} | {gib(entry['rss'])} | {gib(entry['pss'])} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--repo", type=Path, default=harness.ROOT, help="checkout to run")
    parser.add_argument("--settle", type=float, default=20.0, help="seconds idle before sampling")
    parser.add_argument(
        "--repeats", type=int, default=5, help="rounds of both configurations, >= 5 (default 5)"
    )
    parser.add_argument("--name", default="idle_memory", help="results file name")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 round, 3 s settle, echo jobs instead of text: a smoke test; writes nothing",
    )
    args = parser.parse_args()
    if args.quick:
        repeats, settle, job = 1, 3.0, "echo"
    else:
        if args.repeats < 5:
            parser.error("--repeats: at least 5 (fewer give no interval worth the name)")
        repeats, settle, job = args.repeats, args.settle, "text"
    from tqdm import tqdm

    repo = args.repo.resolve()
    runs = []
    for r in tqdm(range(repeats), desc="rounds"):
        for k in range(len(CASES)):
            case = CASES[(r + k) % len(CASES)]
            runs.append(run(repo, settle, case, job))
            print(
                f"round {r + 1}: {case}: idle PSS {gib(runs[-1]['idle']['pss_bytes'])}", flush=True
            )
    code = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    data = {
        "code": code,
        "machine": harness.machine(),
        "repeats": repeats,
        "settle_s": settle,
        "job": job,
        "kept_warm": list(KEPT_WARM),
        "runs": runs,
        "summary": summarise(runs),
    }
    harness.publish(args.name, data, markdown(data), args)


if __name__ == "__main__":
    main()
