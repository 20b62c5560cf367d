"""A real multi-node Ray cluster on this machine, for tests: a head and worker nodes started with
`ray start --block` on their own loopback addresses (127.0.N.2 head, 127.0.N.3... workers) and
their own ports, each node one process group that can be SIGKILLed (a node death) and started
again (it rejoins).

Workers really have a disk of their own: each worker's `ray start` runs in a private mount
namespace with a tmpfs over the driver-local dir (`LocalCluster.driver_dir`), the head's and the
other workers' dirs and any `private_dirs` (the tests pass pytest's temp root), so a file the
driver writes there is visible to the head, never to a worker. Each node keeps Ray's temp dir
(`--temp-dir`: sessions, sockets, logs) in its own dir, which the other nodes cannot see:
a worker needs nothing from the head's disk (its session name and config come from the GCS,
runtime environments and job packages through the GCS too).

The cluster is driven from outside only, never with `ray.init` (the test process may run a
different local Ray): jobs through `ray job submit`, Serve through `serve deploy --address`,
node state through the dashboard's REST API.

    with LocalCluster(tmp_path, workers=[{}, {"model_node": 4}]) as cluster:
        cluster.run_on(cluster.workers, "def main():\\n    return 1")
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from busque.ray_start import SERVE_ENV
from busque.testing.servers import free_port, port_free

BIN = Path(sys.executable).parent
RAY = str(BIN / "ray")

# Every node and every CLI call gets these, on top of busque's Serve environment.
BASE_ENV = {
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    # A SIGKILLed node is declared dead after ~5 s of failed health checks (Ray: 3 s x 5).
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_failure_threshold": "5",
    # Proxies on one machine: each binds its own port (see Node.serve_port), never shared.
    "SERVE_SOCKET_REUSE_PORT_ENABLED": "0",
}

RESULT_MARKER = "@@busque-run-on@@"


class ClusterError(RuntimeError):
    pass


@dataclass
class Node:
    name: str
    ip: str
    dir: Path  # the node's own disk: Ray's temp dirs live here
    log: Path  # `ray start` output
    resources: dict[str, float] = field(default_factory=dict)
    head: bool = False
    ports: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    starts: int = 0
    killed: bool = False  # by LocalCluster.kill: its exit is no failure

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def temp_dir(self) -> Path:
        """This start's Ray temp dir (a fresh one per start: a restarted node rejoins the same
        session, whose name would otherwise clash with the dead node's files)."""
        return self.dir / f"t{self.starts}"

    @property
    def serve_port(self) -> int:
        """The port Serve's HTTP proxy binds on this node (see LocalCluster.serve_config)."""
        return self.ports["serve_http"]

    @property
    def serve_url(self) -> str:
        return f"http://{self.ip}:{self.serve_port}"


def mount_namespaces_available() -> bool:
    """Whether this process may run a command in a private mount namespace with a tmpfs (root,
    or a kernel and container that allow it)."""
    if not shutil.which("unshare"):
        return False
    probe = tempfile.mkdtemp(prefix="busque-ns-")
    try:
        result = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", _mount_script([probe])],
            capture_output=True,
            timeout=30,
        )
        return result.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def _mount_script(dirs: Iterable[Path | str], then: str = "true") -> str:
    mounts = [f"mount -t tmpfs -o mode=0755 tmpfs {shlex.quote(str(d))}" for d in dirs]
    return " && ".join([*mounts, then])


def _subnet_in_use(n: int) -> bool:
    """Whether something already uses 127.0.n.* (another cluster on this machine)."""
    suffix = f"{n:02X}007F"  # /proc/net/tcp: little-endian hex, 127.0.n.x -> XXNN007F
    with contextlib.suppress(OSError), open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            if line.split()[1].split(":")[0].endswith(suffix):
                return True
    return False


def _pick_subnet() -> int:
    candidates = list(range(1, 255))
    random.shuffle(candidates)
    for n in candidates:
        if not _subnet_in_use(n):
            return n
    raise ClusterError("no free 127.0.N.0/24 loopback subnet")


def _port_range_free(start: int, count: int) -> bool:
    return all(port_free(port, "0.0.0.0") for port in range(start, start + count))


def _free_port_range(count: int, taken: Iterable[int] = ()) -> int:
    """The first of `count` consecutive free ports, none of them in `taken`, in 20000-29999:
    not the kernel's ephemeral ports (32768 up, free_port's), nor Ray's default worker ports
    (10002-19999), nor those of Serve's direct ingress (30000 up)."""
    taken = set(taken)
    for _ in range(200):
        start = random.randrange(20000, 30000 - count)
        if taken.isdisjoint(range(start, start + count)) and _port_range_free(start, count):
            return start
    raise ClusterError(f"no {count} consecutive free ports")


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, pgid) for every process, from /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        table[int(entry)] = (int(fields[1]), int(fields[2]))
    return table


def process_tree(pid: int, reaped: bool = False) -> list[int]:
    """`pid`, the members of its process group and their descendants (a node: `ray start`, GCS,
    raylet, dashboard, agents, and the workers, which have groups of their own). `reaped`: the
    leader `pid` was waited for, so the number may belong to another process by now; then only
    an orphaned group of `pid` counts (Linux reuses no pid while its group has members)."""
    table = _proc_table()
    if reaped:
        if pid in table:
            return []
        found = {p for p, (_, pgid) in table.items() if pgid == pid}
    else:
        found = {pid} if pid in table else set()
        found |= {p for p, (_, pgid) in table.items() if pgid == pid}
    grew = True
    while grew:
        children = {p for p, (ppid, _) in table.items() if ppid in found} - found
        found |= children
        grew = bool(children)
    return sorted(found)


def _signal_all(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _wait_gone(pids: Sequence[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    left = list(pids)
    while left and time.monotonic() < deadline:
        left = [p for p in left if _running(p)]
        if left:
            time.sleep(0.1)
    return left


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as e:
        return f"<{path}: {e}>"


def _is_node_process(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return b"start" in argv and b"--block" in argv


def _reap_on_exit(root: str) -> None:
    """A watchdog in a process of its own (`python -m busque.testing.ray_cluster ROOT`): reads
    "+pid" / "-pid" lines, the `ray start` processes of the nodes that run; when its stdin
    closes, SIGKILLs what still runs and removes the cluster's dir unless told "keep" (the
    test process is gone, even SIGKILLed, without `stop()`)."""
    pids: set[int] = set()
    keep = False
    for line in sys.stdin:
        line = line.strip()
        keep = keep or line == "keep"
        if line[:1] in ("+", "-") and line[1:].isdigit():
            (pids.add if line[0] == "+" else pids.discard)(int(line[1:]))
    for pid in pids:
        if _is_node_process(pid):  # not a pid reused since
            _signal_all(process_tree(pid), signal.SIGKILL)
    if not keep:
        time.sleep(1)
        shutil.rmtree(root, ignore_errors=True)


class LocalCluster:
    """A head and `len(workers)` worker nodes; `workers` gives each worker's custom resources.

    `log_dir` gets each node's `ray start` output (`<name>.log`) and, on stop, a copy of its Ray
    logs (`<name>-logs/`). `private_dirs` are hidden (tmpfs) from the workers besides
    `driver_dir`. `isolate=False` starts the workers without a mount namespace (where mount
    namespaces are not allowed; `isolated` says which it is). A node that fails to start is
    started again, up to `attempts` times in all.
    """

    def __init__(
        self,
        log_dir: Path,
        workers: Sequence[dict[str, float]] = ({}, {}),
        *,
        num_cpus: int = 2,
        object_store_memory: int = 150 * 2**20,
        private_dirs: Iterable[Path] = (),
        isolate: bool = True,
        env: dict[str, str] | None = None,
        attempts: int = 3,
    ):
        self.log_dir = Path(log_dir)
        self.num_cpus = num_cpus
        self.object_store_memory = object_store_memory
        self.private_dirs = [Path(d) for d in private_dirs]
        self.isolated = isolate
        self.extra_env = dict(env or {})
        self.worker_resources = [dict(r) for r in workers]
        self.attempts = attempts
        self.root: Path | None = None
        self.nodes: list[Node] = []
        self.start_s: float | None = None
        self._reaper: subprocess.Popen | None = None
        self._picked: set[int] = set()

    # -- addresses ---------------------------------------------------------------------------

    @property
    def head(self) -> Node:
        return self.nodes[0]

    @property
    def workers(self) -> list[Node]:
        return self.nodes[1:]

    @property
    def address(self) -> str:
        """The GCS address, `ray start --address` / `RAY_ADDRESS` style."""
        return f"{self.head.ip}:{self.head.ports['gcs']}"

    @property
    def dashboard_url(self) -> str:
        """For `ray job submit --address`, `serve deploy --address`, `serve status --address`."""
        return f"http://{self.head.ip}:{self.head.ports['dashboard']}"

    @property
    def driver_dir(self) -> Path:
        """A dir the driver (this process) and the head see, the workers never."""
        assert self.root is not None, "cluster not started"
        return self.root / "driver"

    def node(self, ip_or_name: str) -> Node:
        for node in self.nodes:
            if ip_or_name in (node.ip, node.name):
                return node
        raise KeyError(ip_or_name)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of every node and CLI call: this process's, without its own Ray's
        address, with busque's Serve settings (where it sets none: as `serve_environment()`),
        BASE_ENV, `env=` and the venv's commands first on PATH."""
        env = dict(SERVE_ENV)
        env.update(
            (k, v) for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_NAMESPACE")
        )
        env.update(BASE_ENV)
        env.update(self.extra_env)
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        env.update(extra)
        return env

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 180) -> LocalCluster:
        """Start the head, then the workers; returns once every node is alive. Raises with the
        tail of the failing node's logs (after stopping what started) when one does not come."""
        if self.nodes:
            raise ClusterError("already started")
        started = time.monotonic()
        deadline = started + timeout
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # Short: Ray's unix sockets live under each temp dir (paths are capped at 107 bytes).
        self.root = Path(tempfile.mkdtemp(prefix="busque-rc-"))
        try:
            for private in self.private_dirs:
                if self.root.is_relative_to(private.resolve()):
                    raise ValueError(f"private dir {private} would hide the nodes' own dirs too")
            self.driver_dir.mkdir()
            # Kills the nodes should this process die without stop().
            self._reaper = subprocess.Popen(
                [sys.executable, "-m", "busque.testing.ray_cluster", str(self.root)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                text=True,
            )
            subnet = _pick_subnet()
            for i, resources in enumerate([{}, *self.worker_resources]):
                node = Node(
                    name=f"worker{i}" if i else "head",
                    ip=f"127.0.{subnet}.{i + 2}",
                    dir=self.root / (f"w{i}" if i else "h"),
                    log=self.log_dir / (f"worker{i}.log" if i else "head.log"),
                    resources=resources,
                    head=i == 0,
                )
                node.dir.mkdir()
                self.nodes.append(node)
            self._launch(self.head)
            self._join([self.head], deadline, known=set())
            known = {n["node_id"] for n in self.list_nodes()}
            for node in self.workers:
                self._launch(node)
            self._join(self.workers, deadline, known)
            self.wait_for_nodes(len(self.nodes), timeout=max(30.0, deadline - time.monotonic()))
        except BaseException:
            self.stop()
            raise
        self.start_s = self.elapsed(started)
        return self

    def _join(self, nodes: Sequence[Node], deadline: float, known: set[str]) -> None:
        """Wait until each of `nodes` is listed alive as a node it was not before. A node whose
        `ray start` exits is started again, up to `attempts` times: Ray 2.60 gives a node's
        dashboard agent 15 s to start and the node 30 s to register, which a loaded machine
        can miss (raylet.out: "Timed out waiting for file .../dashboard_agent_listen_port_*").
        `known`: the node ids listed before they started."""
        known = set(known)
        tries = dict.fromkeys((node.name for node in nodes), 1)
        waiting = list(nodes)
        while waiting:
            for node in waiting:
                if node.alive:
                    continue
                if tries[node.name] >= self.attempts:
                    raise self._failure(
                        node, f"{node.name}: `ray start` exited ({tries[node.name]} tries)"
                    )
                tries[node.name] += 1
                self.kill(node)  # whatever is left of it
                known |= {n["node_id"] for n in self.list_nodes() if n["node_ip"] == node.ip}
                print(f"{node.name}: `ray start` exited, starting it again", file=sys.stderr)
                self._launch(node, new_ports=True)
            alive = self.alive_nodes()
            waiting = [
                node
                for node in waiting
                if not node.alive
                or not any(n["node_ip"] == node.ip and n["node_id"] not in known for n in alive)
            ]
            if waiting and time.monotonic() > deadline:
                raise self._failure(waiting[0], f"{waiting[0].name}: not up in time")
            if waiting:
                time.sleep(0.3)

    @staticmethod
    def elapsed(since: float) -> float:
        return time.monotonic() - since

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _free_port(self) -> int:
        """A free port no node of this cluster was given (free_port may hand one out twice)."""
        used = {port for node in self.nodes for port in node.ports.values()}
        while (port := free_port()) in used or port in self._picked:
            pass
        self._picked.add(port)
        return port

    def _assign_ports(self, node: Node) -> None:
        keep = {"gcs", "dashboard", "client", "serve_http", "serve_grpc"}
        node.ports = {k: v for k, v in node.ports.items() if k in keep}
        names = [
            "node_manager",
            "object_manager",
            "agent_http",
            "agent_grpc",
            "runtime_env_agent",
            "metrics",
            "serve_http",
            "serve_grpc",
        ]
        if node.head:
            names += ["gcs", "dashboard", "client"]
        for name in names:
            if name not in node.ports:
                node.ports[name] = self._free_port()
        # Enough for the workers of a few Serve replicas, tasks and a job driver.
        taken = [
            port
            for other in self.nodes
            if other is not node and "min_worker" in other.ports
            for port in range(other.ports["min_worker"], other.ports["max_worker"] + 1)
        ]
        node.ports["min_worker"] = _free_port_range(40, taken)
        node.ports["max_worker"] = node.ports["min_worker"] + 39

    def _command(self, node: Node) -> list[str]:
        p = node.ports
        args = [
            RAY,
            "start",
            "--block",
            "--disable-usage-stats",
            f"--node-ip-address={node.ip}",
            f"--temp-dir={node.temp_dir}",
            f"--num-cpus={self.num_cpus}",
            f"--object-store-memory={self.object_store_memory}",
            f"--node-manager-port={p['node_manager']}",
            f"--object-manager-port={p['object_manager']}",
            f"--min-worker-port={p['min_worker']}",
            f"--max-worker-port={p['max_worker']}",
            f"--dashboard-agent-listen-port={p['agent_http']}",
            f"--dashboard-agent-grpc-port={p['agent_grpc']}",
            f"--runtime-env-agent-port={p['runtime_env_agent']}",
            f"--metrics-export-port={p['metrics']}",
        ]
        if node.resources:
            args.append(f"--resources={json.dumps(node.resources)}")
        if node.head:
            args += [
                "--head",
                f"--port={p['gcs']}",
                f"--ray-client-server-port={p['client']}",
                "--include-dashboard=true",
                f"--dashboard-host={node.ip}",
                f"--dashboard-port={p['dashboard']}",
            ]
        else:
            args.append(f"--address={self.address}")
        return args

    def _hidden_from(self, node: Node) -> list[Path]:
        """What a worker must not see: the driver's and the other nodes' dirs, `private_dirs`."""
        others = [n.dir for n in self.nodes if n is not node]
        return [self.driver_dir, *others, *self.private_dirs]

    def _launch(self, node: Node, new_ports: bool = False) -> None:
        if new_ports:
            node.ports = {}
        self._assign_ports(node)
        node.starts += 1
        node.killed = False
        node.temp_dir.mkdir(parents=True)
        env = self.env()
        if not node.head:
            env["RAY_SERVE_WORKER_PROXY_HTTP_PORT"] = str(node.ports["serve_http"])
            env["RAY_SERVE_WORKER_PROXY_GRPC_PORT"] = str(node.ports["serve_grpc"])
        command = self._command(node)
        if not node.head and self.isolated:
            hidden = [d for d in self._hidden_from(node) if d.is_dir()]
            # cd after the mounts: a cwd inside a hidden dir would still reach the files under it.
            script = _mount_script(hidden, f'cd {shlex.quote(str(node.dir))} && exec "$@"')
            command = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"]
            command += self._command(node)
        with open(node.log, "ab") as log:
            log.write(f"\n==== start {node.starts}: {shlex.join(command)}\n".encode())
            log.flush()
            node.proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=node.dir,
                env=env,
                start_new_session=True,  # the node is one process group
            )
        self._tell_reaper(f"+{node.proc.pid}")

    def _failure(self, node: Node, message: str) -> ClusterError:
        logs = [f"---- {node.log} ----\n{tail(node.log)}"]
        session = node.temp_dir / "session_latest" / "logs"
        for name in ("raylet.out", "raylet.err", "gcs_server.out", "gcs_server.err"):
            path = session / name
            if path.exists():
                logs.append(f"---- {path} ----\n{tail(path, 2000)}")
        return ClusterError(f"{message}\n" + "\n".join(logs))

    def _tell_reaper(self, line: str) -> None:
        if self._reaper is not None and self._reaper.stdin is not None:
            with contextlib.suppress(OSError):
                self._reaper.stdin.write(line + "\n")
                self._reaper.stdin.flush()

    def kill(self, node: Node) -> None:
        """SIGKILL the node: `ray start`, its raylet, agents and workers (GCS and dashboard too
        for the head), as a crashed machine would go."""
        if node.proc is None:
            return
        node.killed = True
        # Until it is waited for, the pid (running or a zombie) is the node's own.
        pids = process_tree(node.proc.pid, reaped=node.proc.returncode is not None)
        _signal_all(pids, signal.SIGKILL)
        node.proc.wait(timeout=30)
        self._tell_reaper(f"-{node.proc.pid}")
        left = _wait_gone(pids, 30)
        if left:
            raise ClusterError(f"{node.name}: processes {left} survived SIGKILL")

    def restart(self, node: Node, timeout: float = 120) -> None:
        """Start a killed worker again (same ip, new ports and temp dir): a new node joins."""
        if node.head:
            raise ValueError("the head cannot rejoin its own cluster (no GCS fault tolerance)")
        if node.alive:
            self.kill(node)
        known = {n["node_id"] for n in self.list_nodes()}
        self._launch(node)
        self._join([node], time.monotonic() + timeout, known)

    def stop(self) -> None:
        """SIGKILL every node (on SIGTERM Ray drains for up to 30 s first; a test cluster has
        nothing to keep), keep a copy of their Ray logs in `log_dir`, remove their dirs."""
        for node in self.nodes:
            with contextlib.suppress(ClusterError, subprocess.TimeoutExpired):
                self.kill(node)
        if self._reaper is not None:
            self._tell_reaper("keep")  # stop() copies the logs, then removes the dir itself
            with contextlib.suppress(OSError):
                self._reaper.stdin.close()  # it has nothing left to kill
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._reaper.wait(timeout=30)
            self._reaper = None
        for node in self.nodes:
            self._keep_logs(node)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

    def _keep_logs(self, node: Node) -> None:
        for temp in sorted(node.dir.glob("t*")):
            logs = temp / "session_latest" / "logs"
            if not logs.is_dir():
                continue
            target = self.log_dir / f"{node.name}-logs" / temp.name
            for path in logs.rglob("*"):
                if path.is_file() and not path.is_symlink() and path.stat().st_size:
                    copy = target / path.relative_to(logs)
                    copy.parent.mkdir(parents=True, exist_ok=True)
                    with contextlib.suppress(OSError):
                        shutil.copyfile(path, copy)

    # -- state -------------------------------------------------------------------------------

    def alive_nodes(self) -> list[dict[str, Any]]:
        """The alive nodes as the dashboard's state API lists them (node_id, node_ip,
        is_head_node, state, resources_total, ...); [] while it does not answer."""
        return [n for n in self.list_nodes() if n["state"] == "ALIVE"]

    def list_nodes(self) -> list[dict[str, Any]]:
        """Every node the cluster has known, dead ones too (state "DEAD")."""
        try:
            response = httpx.get(
                f"{self.dashboard_url}/api/v0/nodes",
                params={"limit": 1000, "detail": "true"},
                timeout=10,
            )
            response.raise_for_status()
            nodes = response.json()["data"]["result"]["result"]
        except (httpx.HTTPError, KeyError, ValueError):
            return []
        return nodes

    def node_id(self, node: Node) -> str:
        """The Ray node id of `node`'s current start."""
        ids = [n["node_id"] for n in self.alive_nodes() if n["node_ip"] == node.ip]
        if len(ids) != 1:
            raise ClusterError(f"{node.name}: {len(ids)} alive nodes at {node.ip}")
        return ids[0]

    def actors(self, class_name_contains: str = "") -> list[dict[str, Any]]:
        """The alive actors (class_name, node_id, pid, ...), from the state API."""
        response = httpx.get(
            f"{self.dashboard_url}/api/v0/actors",
            params={"limit": 10000, "detail": "true"},
            timeout=30,
        )
        response.raise_for_status()
        return [
            a
            for a in response.json()["data"]["result"]["result"]
            if a["state"] == "ALIVE" and class_name_contains in a["class_name"]
        ]

    def wait_for_nodes(self, n: int, timeout: float = 60) -> list[dict[str, Any]]:
        """Wait until exactly `n` nodes are alive; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            for node in self.nodes:
                if node.proc is not None and not node.killed and not node.alive:
                    raise self._failure(node, f"{node.name}: `ray start` exited")
            alive = self.alive_nodes()
            if len(alive) == n:
                return alive
            if time.monotonic() > deadline:
                ips = sorted(a["node_ip"] for a in alive)
                culprit = next((x for x in self.nodes if x.ip not in ips), self.head)
                raise self._failure(
                    culprit, f"{len(alive)} nodes alive ({ips}), not {n}, after {timeout}s"
                )
            time.sleep(0.5)

    # -- driving it --------------------------------------------------------------------------

    def cli(
        self, *args: str, timeout: float = 120, check: bool = True, **env: str
    ) -> subprocess.CompletedProcess:
        """Run a command (`ray ...`, `serve ...`, `busque ...`: the venv's) with the cluster's
        environment; raises with its output when it fails and `check`."""
        command = [str(BIN / args[0]) if (BIN / args[0]).exists() else args[0], *args[1:]]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(**env),
            cwd=self.driver_dir,
        )
        if check and result.returncode != 0:
            raise ClusterError(
                f"{shlex.join(command)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
            )
        return result

    def submit(self, *entrypoint: str, timeout: float = 180, **options: str) -> str:
        """`ray job submit` an entrypoint, wait for it, return its output (the job's logs among
        the CLI's lines); raise with it when the job fails. `options` are more `ray job submit`
        flags (`entrypoint_resources='{"model_node": 1}'`, `runtime_env_json=...`)."""
        submission_id = f"busque-{uuid.uuid4().hex[:12]}"
        flags = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
        try:
            result = self.cli(
                "ray",
                "job",
                "submit",
                f"--address={self.dashboard_url}",
                f"--submission-id={submission_id}",
                *flags,
                "--",
                *entrypoint,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            self.cli(
                "ray", "job", "stop", f"--address={self.dashboard_url}", submission_id, check=False
            )
            raise
        output = result.stdout + result.stderr
        if f"Job '{submission_id}' succeeded" not in output:  # e.g. stopped: exit code 0 too
            raise ClusterError(f"job {submission_id} did not succeed:\n{output[-6000:]}")
        return result.stdout

    def run_on(
        self,
        nodes: Node | Sequence[Node],
        code: str,
        *,
        timeout: float = 180,
        resources: dict[str, float] | None = None,
    ) -> dict[str, Any]:
        """Run `code` (Python source defining `main()`, which returns something JSON can encode)
        as a task pinned to each node (NodeAffinitySchedulingStrategy, hard), all in one job
        submitted with `ray job submit`; returns {node ip: main()'s value}. A task that raised
        gives {"error": "..."} instead. The job's script lives in `driver_dir`, which the head
        (where job drivers run) sees."""
        nodes = [nodes] if isinstance(nodes, Node) else list(nodes)
        script = self.driver_dir / f"run_on_{uuid.uuid4().hex[:8]}.py"
        script.write_text(
            textwrap.dedent(code)
            + "\n\n"
            + _RUN_ON_DRIVER.format(
                marker=RESULT_MARKER, resources=json.dumps(resources or {}), timeout=timeout
            )
        )
        output = self.submit(sys.executable, str(script), json.dumps([n.ip for n in nodes]))
        for line in output.splitlines():
            if line.startswith(RESULT_MARKER):
                return json.loads(line[len(RESULT_MARKER) :])
        raise ClusterError(f"no result in the job's output:\n{output[-6000:]}")

    # -- Serve -------------------------------------------------------------------------------

    def serve_config(self, applications: list[dict], **options: Any) -> dict:
        """A Serve config for `serve deploy`: a proxy on every node, each on its node's own
        `serve_port` (the head's is http_options.port, the workers' come from their
        environment)."""
        return {
            "proxy_location": "EveryNode",
            "http_options": {"host": "0.0.0.0", "port": self.head.serve_port},
            "grpc_options": {"port": self.head.ports["serve_grpc"]},
            "applications": applications,
            **options,
        }

    def serve_deploy(self, config: dict, timeout: float = 120) -> None:
        path = self.driver_dir / f"serve_{uuid.uuid4().hex[:8]}.json"
        path.write_text(json.dumps(config))  # JSON is YAML
        self.cli("serve", "deploy", str(path), f"--address={self.dashboard_url}", timeout=timeout)

    def serve_status(self) -> str:
        """`serve status` output (YAML)."""
        return self.cli("serve", "status", f"--address={self.dashboard_url}").stdout

    def serve_applications(self) -> dict[str, Any]:
        """Serve's applications and their status, from the dashboard's REST API (what `serve
        status` shows, without starting a process per call)."""
        response = httpx.get(f"{self.dashboard_url}/api/serve/applications/", timeout=30)
        response.raise_for_status()
        return response.json().get("applications") or {}

    def wait_for_app(self, name: str, timeout: float = 240) -> str:
        """Wait until application `name` is RUNNING; returns `serve status`, raises with it
        when the app failed or did not get there in time."""
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                state = (self.serve_applications().get(name) or {}).get("status")
            if state in ("RUNNING", "DEPLOY_FAILED", "UNHEALTHY"):
                break
            time.sleep(1)
        status = self.serve_status()
        if state != "RUNNING":
            raise ClusterError(f"application {name} is {state}, not RUNNING:\n{status}")
        return status

    def deploy_busque(self, env: dict[str, str], args: dict, timeout: float = 240) -> str:
        """busque deployed as the README tells a cluster user (`serve deploy`, BUSQUE_* in the
        application's runtime_env); waits for RUNNING and returns a new API key (tenant
        `cluster`) made with `busque keys create`."""
        app = {
            "name": "busque",
            "route_prefix": "/",
            "import_path": "busque.serve.app:app_builder",
            "args": args,
            "runtime_env": {"env_vars": env},
        }
        self.serve_deploy(self.serve_config([app]))
        self.wait_for_app("busque", timeout=timeout)
        created = self.cli("busque", "keys", "create", "--tenant", "cluster", "--json", **env)
        return json.loads(created.stdout)["key"]

    def serve_shutdown(self) -> None:
        self.cli("serve", "shutdown", f"--address={self.dashboard_url}", "-y", check=False)


_RUN_ON_DRIVER = """
def _busque_run_on():
    import json
    import sys

    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    ips = json.loads(sys.argv[1])
    ray.init(log_to_driver=False)
    alive = {{n["NodeManagerAddress"]: n["NodeID"] for n in ray.nodes() if n["Alive"]}}
    task = ray.remote(num_cpus=0, resources={resources}, max_retries=0)(main)
    refs = {{}}
    out = {{}}
    for ip in ips:
        if ip not in alive:
            out[ip] = {{"error": f"no alive node at {{ip}}"}}
            continue
        strategy = NodeAffinitySchedulingStrategy(alive[ip], soft=False)
        refs[ip] = task.options(scheduling_strategy=strategy).remote()
    for ip, ref in refs.items():
        try:
            out[ip] = ray.get(ref, timeout={timeout})
        except Exception as e:
            out[ip] = {{"error": repr(e)}}
    print("{marker}" + json.dumps(out), flush=True)


_busque_run_on()
"""


if __name__ == "__main__":
    _reap_on_exit(sys.argv[1])
