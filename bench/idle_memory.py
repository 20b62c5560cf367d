"""Idle memory of `busque serve` (the README's command, on its embedded defaults), and the cold
start of a model deployment that scaled to zero.

Starts `busque serve` from a checkout (default this one; --repo runs another, e.g. a git
worktree of an older commit, with this venv) on a fresh home, waits until /readyz answers and
then --settle seconds, and sums the memory of every process it started (the local Ray's
servers, Serve's controller and proxies, one process per replica): RSS, which counts shared
libraries (torch) once per process, and PSS, which splits them between the processes that share
them (the honest total). Then a text job: the first one after idle starts the TextGenerator
(scaled to zero when idle, since issue 16), a second one finds it warm.

    python bench/idle_memory.py                       # this checkout
    python bench/idle_memory.py --repo /tmp/old --name idle_memory_before
"""

from __future__ import annotations

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


def text_job_seconds(client) -> float:
    started = time.perf_counter()
    created = client.post(
        "/v1/jobs",
        json={
            "model": TEXT_MODEL,
            "input": {"prompt": "Hi"},
            "params": {"max_new_tokens": 4},
        },
    )
    created.raise_for_status()
    job = harness.wait_for(client, created.json()["id"], timeout=600)
    assert job["status"] == "succeeded", job
    return time.perf_counter() - started


def run(repo: Path, settle_s: float) -> dict:
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
                time.sleep(2)
            ready_s = time.perf_counter() - started
            time.sleep(settle_s)
            idle = sample(proc.pid)
            client.headers["X-API-Key"] = (home / "admin.key").read_text().strip()
            cold = text_job_seconds(client)
            warm = text_job_seconds(client)
            serving = sample(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    return {
        "ready_s": round(ready_s, 1),
        "settle_s": settle_s,
        "idle": idle,
        "first_text_job_s": round(cold, 2),
        "second_text_job_s": round(warm, 2),
        "after_text_jobs": serving,
    }


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def markdown(result: dict) -> str:
    idle = result["idle"]
    lines = [
        f"# Idle memory of `busque serve` ({result['code']})",
        "",
        f"Ready after {result['ready_s']} s; sampled {result['settle_s']} s later.",
        "",
        f"- idle: {idle['processes']} processes, RSS {gib(idle['rss_bytes'])}, "
        f"PSS {gib(idle['pss_bytes'])}",
        f"- first text job (starts the TextGenerator if it is scaled to zero): "
        f"{result['first_text_job_s']} s; second: {result['second_text_job_s']} s",
        f"- after the text jobs: {result['after_text_jobs']['processes']} processes, PSS "
        f"{gib(result['after_text_jobs']['pss_bytes'])}",
        "",
        "| role (idle) | processes | RSS | PSS |",
        "|---|---:|---:|---:|",
    ]
    for role, entry in idle["by_role"].items():
        lines.append(
            f"| {role} | {entry['processes']} | {gib(entry['rss'])} | {gib(entry['pss'])} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--repo", type=Path, default=harness.ROOT, help="checkout to run")
    parser.add_argument("--settle", type=float, default=30.0, help="seconds idle before sampling")
    parser.add_argument("--name", default="idle_memory", help="results file name")
    args = parser.parse_args()
    result = run(args.repo.resolve(), args.settle)
    code = subprocess.run(
        ["git", "-C", str(args.repo), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    result |= {"code": code, "machine": harness.machine()}
    text = markdown(result)
    print(text)
    if not args.no_write:
        harness.write_results(args.name, result, text)


if __name__ == "__main__":
    main()
