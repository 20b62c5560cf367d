"""busque's test harness on a real multi-node Ray cluster (busque/testing/ray_cluster.py): a head
and two workers started with `ray start` on their own loopback addresses, the workers each with a
disk of their own (a private mount namespace), driven only from outside (`ray job submit`, the
dashboard's REST API), never with `ray.init` from this process, which may run a local Ray of its
own (conftest's `ray_cluster`)."""

from __future__ import annotations

import io
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from busque.testing.app import wait_for
from busque.testing.ray_cluster import (
    ClusterError,
    LocalCluster,
    Node,
    mount_namespaces_available,
)
from busque.testing.servers import postgres, postgres_available
from tests.conftest import TEXT_MODEL_CACHE

MODEL_NODE = {"model_node": 4}  # a custom resource standing in for a GPU node
REPO = str(Path(__file__).resolve().parent.parent)

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head and two workers (the second with MODEL_NODE), started once per module. The workers
    see neither the cluster's `driver_dir` nor pytest's temp dirs (`tmp_path`) when mount
    namespaces are allowed (`cluster.isolated`)."""
    basetemp = tmp_path_factory.getbasetemp()
    # /tmp/pytest-of-root holds this session's and earlier sessions' dirs: hide them all.
    private = basetemp.parent if basetemp.parent.name.startswith("pytest-of-") else basetemp
    started = time.monotonic()
    with LocalCluster(
        tmp_path_factory.mktemp("cluster-logs"),
        workers=[{}, MODEL_NODE],
        private_dirs=[private],
        isolate=mount_namespaces_available(),
        env={
            "PYTHONPATH": REPO,  # the replicas import tests.fixture_models
            # Load reaches Serve's autoscaler every second (default 10 s): a short test.
            "RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "1",
            "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "1",
        },
    ) as cluster:
        print(f"\n3-node Ray cluster up in {time.monotonic() - started:.1f}s at {cluster.address}")
        yield cluster


WHERE_AM_I = """
def main():
    import os

    import ray

    return {
        "ip": ray.util.get_node_ip_address(),
        "node_id": ray.get_runtime_context().get_node_id(),
        "pid": os.getpid(),
    }
"""


def test_three_nodes_with_a_model_node_and_pinned_tasks(cluster):
    alive = cluster.wait_for_nodes(3, timeout=30)
    by_ip = {n["node_ip"]: n for n in alive}
    assert set(by_ip) == {n.ip for n in cluster.nodes}
    assert [n["node_ip"] for n in alive if n["is_head_node"]] == [cluster.head.ip]
    assert not cluster.head.ip.startswith("127.0.0.")
    with_model = [ip for ip, n in by_ip.items() if "model_node" in n["resources_total"]]
    assert with_model == [cluster.workers[1].ip]
    assert by_ip[cluster.workers[1].ip]["resources_total"]["model_node"] == 4
    for node in cluster.nodes:
        assert by_ip[node.ip]["resources_total"]["CPU"] == 2

    started = time.monotonic()
    where = cluster.run_on(cluster.nodes, WHERE_AM_I)
    print(f"one job, a task on each node: {time.monotonic() - started:.1f}s")
    for node in cluster.nodes:
        assert where[node.ip]["ip"] == node.ip, where
        assert where[node.ip]["node_id"] == by_ip[node.ip]["node_id"], where


def test_workers_do_not_see_the_drivers_files(cluster, tmp_path):
    if not cluster.isolated:
        pytest.skip("mount namespaces not allowed here: the workers share this disk")
    mine = [cluster.driver_dir / "driver-only.txt", tmp_path / "pytest-tmp.txt"]
    for path in mine:
        path.write_text("only on the driver's machine")
    head_session = cluster.head.temp_dir
    code = f"""
def main():
    import os

    paths = {[str(p) for p in mine]!r}
    return {{
        "files": [os.path.exists(p) for p in paths],
        "head_session": os.listdir({str(head_session)!r}) if os.path.isdir({str(head_session)!r})
        else None,
    }}
"""
    seen = cluster.run_on(cluster.nodes, code)
    assert seen[cluster.head.ip]["files"] == [True, True], seen
    assert seen[cluster.head.ip]["head_session"], seen
    for worker in cluster.workers:
        assert seen[worker.ip]["files"] == [False, False], seen
        assert not seen[worker.ip]["head_session"], seen  # an empty tmpfs


def test_a_killed_worker_leaves_and_rejoins(cluster):
    worker = cluster.workers[0]
    before = {n["node_ip"]: n["node_id"] for n in cluster.wait_for_nodes(3, timeout=30)}

    started = time.monotonic()
    cluster.kill(worker)
    alive = cluster.wait_for_nodes(2, timeout=60)
    print(f"SIGKILLed worker gone from the alive nodes after {time.monotonic() - started:.1f}s")
    assert worker.ip not in {n["node_ip"] for n in alive}
    dead = {n["node_id"]: n["state"] for n in cluster.list_nodes()}
    assert dead[before[worker.ip]] == "DEAD"

    started = time.monotonic()
    cluster.restart(worker)
    alive = cluster.wait_for_nodes(3, timeout=60)
    print(f"restarted worker rejoined after {time.monotonic() - started:.1f}s")
    now = {n["node_ip"]: n["node_id"] for n in alive}
    assert set(now) == set(before)
    assert now[worker.ip] != before[worker.ip]  # a new node on the same address
    assert now[cluster.head.ip] == before[cluster.head.ip]

    where = cluster.run_on(worker, WHERE_AM_I)
    assert where[worker.ip]["node_id"] == now[worker.ip]


def test_a_node_that_cannot_start_fails_with_its_log(tmp_path):
    bad = LocalCluster(tmp_path, workers=[], object_store_memory=1, attempts=1)
    with pytest.raises(ClusterError, match="head: `ray start` exited") as failed:
        bad.start(timeout=60)
    assert "minimum allowed is" in str(failed.value)  # Ray's own words, from head.log
    assert not bad.root.exists()


def test_the_embedded_database_is_refused_on_several_nodes(cluster, tmp_path_factory):
    """`serve deploy` without BUSQUE_DATABASE__URL / S3 would give every node its own SQLite file
    and object directory: the app builder refuses, and Serve reports why."""
    app = {
        "name": "embedded",
        "route_prefix": "/",
        "import_path": "busque.serve.app:app_builder",
        "args": BUSQUE_ARGS,
        "runtime_env": {"env_vars": {"BUSQUE_HOME": str(tmp_path_factory.mktemp("embedded"))}},
    }
    cluster.serve_deploy(cluster.serve_config([app]))
    try:
        with pytest.raises(ClusterError, match="DEPLOY_FAILED") as failed:
            cluster.wait_for_app("embedded", timeout=120)
        assert "refuses to run on a Ray cluster of 3 nodes" in str(failed.value)
        assert "BUSQUE_DATABASE__URL" in str(failed.value)  # and says what to set
    finally:
        cluster.serve_shutdown()


# -- busque deployed with `serve deploy` on the cluster ---------------------------------------

# Small replicas (conftest's test_settings keeps the app small the same way); the Embedder and
# the `echo` model's replica need the model node, so a job crosses nodes.
BUSQUE_ARGS = {
    "jobs": {"poll_s": 0.2, "heartbeat_s": 0.4, "lease_s": 2.0, "max_wait_s": 30},
    "faces": {"enabled": False},
    "webhooks": {"allow_networks": ["127.0.0.0/8"], "backoff_s": 0.2, "backoff_max_s": 1},
    "serve": {"gateway": {"num_cpus": 0.1}, "dispatcher": {"num_cpus": 0.1}},
    "model_deployments": {
        "embedder": {"num_cpus": 0.1, "resources": {"model_node": 1}},
        "utility": {"num_cpus": 0.1, "resources": {"model_node": 1}, "min_replicas": 1},
        **{name: {"num_cpus": 0.1, "min_replicas": 1} for name in ("ingest", "pipelines")},
        # Two Matchers, never on the same node: a search must not depend on which answers.
        "matcher": {
            "num_cpus": 0.1,
            "min_replicas": 2,
            "max_replicas": 2,
            "max_replicas_per_node": 1,
        },
        # The text generator starts on first use, on the model node.
        "textgen": {
            "num_cpus": 0.1,
            "resources": {"model_node": 1},
            "min_replicas": 0,
            "max_replicas": 1,
        },
        # Autoscaled: none while idle, up to 3 under load, back to none a few seconds after.
        "fixtures": {
            "num_cpus": 0.1,
            "min_replicas": 0,
            "max_replicas": 3,
            "max_ongoing_requests": 2,
            "target_ongoing_requests": 1,
            "upscale_delay_s": 0,
            "downscale_delay_s": 2,
            "downscale_to_zero_delay_s": 4,
            "look_back_period_s": 2,
        },
        "crashy": {"num_cpus": 0.1, "min_replicas": 0, "max_replicas": 1},
    },
    "model_modules": ["tests.fixture_models"],
    # The bundled SmolLM2 converted once per machine (the same cache as conftest's).
    "text": {"cache_dir": str(TEXT_MODEL_CACHE), "max_batch": 2},
}


@dataclass
class Busque:
    """busque deployed on the cluster: its BUSQUE_* environment (the CLI's too) and a key."""

    cluster: LocalCluster
    env: dict[str, str]
    key: str

    def client(self, node: Node) -> httpx.Client:
        """HTTP to the Serve proxy on `node`."""
        return httpx.Client(base_url=node.serve_url, headers={"X-API-Key": self.key}, timeout=60)


@pytest.fixture(scope="module")
def busque(cluster, tmp_path_factory, seaweedfs_server):
    """busque deployed with `serve deploy` (a proxy on every node), on a PostgreSQL of its own
    and the session's SeaweedFS (a bucket of its own); `serve shutdown` at the end."""
    if not postgres_available():
        if os.environ.get("BUSQUE_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL server binaries are required (BUSQUE_REQUIRE_POSTGRES=1)")
        pytest.skip("PostgreSQL server binaries not installed")
    with postgres(tmp_path_factory.mktemp("cluster-pg")) as database_url:
        env = {
            "BUSQUE_DATABASE__URL": database_url,
            "BUSQUE_STORAGE__BACKEND": "s3",
            "BUSQUE_STORAGE__S3_ENDPOINT": seaweedfs_server["endpoint"],
            "BUSQUE_STORAGE__S3_ACCESS_KEY": seaweedfs_server["access_key"],
            "BUSQUE_STORAGE__S3_SECRET_KEY": seaweedfs_server["secret_key"],
            "BUSQUE_STORAGE__S3_BUCKET": f"cluster-{uuid.uuid4().hex[:8]}",
            # Per node: the workers see their own (empty) tmpfs here, never the driver's dir.
            "BUSQUE_HOME": str(tmp_path_factory.mktemp("cluster-home")),
        }
        started = time.monotonic()
        try:
            key = cluster.deploy_busque(env, BUSQUE_ARGS)
            print(f"\nbusque RUNNING on the cluster {time.monotonic() - started:.1f}s after deploy")
            yield Busque(cluster, env, key)
        finally:
            cluster.serve_shutdown()


@pytest.mark.postgres
@pytest.mark.timeout(480)  # deploying busque on 2 cores takes a minute or two
def test_busque_serves_jobs_through_every_nodes_proxy(cluster, busque):
    proxies = cluster.actors(class_name_contains="ProxyActor")
    assert sorted(a["node_id"] for a in proxies) == sorted(map(cluster.node_id, cluster.nodes))
    for node in cluster.nodes:
        with busque.client(node) as api:
            deadline = time.monotonic() + 90  # each node's proxy learns the routes on its own
            while (ready := _get(api, "/readyz")) != 200:
                assert time.monotonic() < deadline, f"{node.name}: /readyz {ready}"
                time.sleep(0.5)
            created = api.post("/v1/jobs", json={"model": "echo", "input": {"via": node.name}})
            assert created.status_code == 202, created.text
            job = wait_for(api, created.json()["id"], timeout=60)
            assert job["status"] == "succeeded", job
            assert job["result"] == {"echo": {"via": node.name}}, job

    # The echo model's replica runs where the model node's resource is.
    replicas = cluster.actors(class_name_contains="utility")
    assert {a["node_id"] for a in replicas} == {cluster.node_id(cluster.workers[1])}


@pytest.mark.postgres
def test_a_webhook_reaches_its_receiver_signed(cluster, busque):
    """The Dispatcher (on whichever node) delivers a job's webhook, signed with the tenant's
    secret, to a receiver outside the cluster."""
    from busque.jobs.webhooks import verify
    from tests.test_webhooks_e2e import Receiver

    receiver = Receiver()
    try:
        url = receiver.url()
        with busque.client(cluster.workers[0]) as api:
            secret = api.get("/v1/me").json()["webhook_secret"]
            created = api.post(
                "/v1/jobs",
                json={"model": "echo", "input": {"hook": 1}, "webhook": {"url": url}},
            )
            assert created.status_code == 202, created.text
            wait_for(api, created.json()["id"], timeout=60)
        deadline = time.monotonic() + 30
        while not [r for r in receiver.received(url) if b'"job.result"' in r["body"]]:
            assert time.monotonic() < deadline, receiver.received(url)
            time.sleep(0.2)
        for request in receiver.received(url):
            verify(secret, request["headers"], request["body"])  # raises if not genuine
    finally:
        receiver.close()


def _running_replicas(cluster: LocalCluster, deployment: str) -> list[dict]:
    app = cluster.serve_applications().get("busque") or {}
    replicas = ((app.get("deployments") or {}).get(deployment) or {}).get("replicas") or []
    return [r for r in replicas if r.get("state") == "RUNNING"]


@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_a_model_deployment_scales_up_under_load_and_to_zero_when_idle(cluster, busque):
    """The `fixtures` deployment (min 0, max 3, one request per replica wanted) starts with no
    replica, grows past one while a dozen jobs of a few seconds each are queued, and goes back
    to none once they are done."""
    assert _running_replicas(cluster, "fixtures") == []
    with busque.client(cluster.head) as api:
        jobs = []
        for _ in range(12):
            created = api.post("/v1/jobs", json={"model": "sleep", "input": {"seconds": 6}})
            assert created.status_code == 202, created.text
            jobs.append(created.json()["id"])
        peak: list[dict] = []
        deadline = time.monotonic() + 120
        while len(peak) < 3 and time.monotonic() < deadline:
            if len(now := _running_replicas(cluster, "fixtures")) > len(peak):
                peak = now
            if all(api.get(f"/v1/jobs/{j}").json()["status"] == "succeeded" for j in jobs):
                break
            time.sleep(0.5)
        assert len(peak) >= 2, f"never scaled past one replica: {peak}"
        for job_id in jobs:
            assert wait_for(api, job_id, timeout=180)["status"] == "succeeded"
        done = time.monotonic()
        while running := _running_replicas(cluster, "fixtures"):
            assert time.monotonic() - done < 90, f"still running when idle: {running}"
            time.sleep(1)
        print(
            f"\nfixtures: {len(peak)} replicas on {len({r['node_id'] for r in peak})} nodes under "
            f"load, none {time.monotonic() - done:.1f}s after the last job"
        )


@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_a_text_job_runs_on_the_model_node(cluster, busque):
    """The text generator has no replica until the first text job, which starts one on the
    model node; the job streams its tokens and ends with the generated text."""
    from tests.test_events import read_job_sse

    with busque.client(cluster.workers[0]) as api:
        created = api.post(
            "/v1/jobs",
            json={
                "model": "smollm2-135m-instruct",
                "input": {"prompt": "What is the capital of France?"},
                "params": {"temperature": 0, "max_new_tokens": 12},
            },
        )
        assert created.status_code == 202, created.text
        events = read_job_sse(api, created.json()["id"], timeout=240)
    (result,) = [e["data"]["data"]["result"] for e in events if e["event"] == "job.result"]
    assert "Paris" in result["content"]
    assert len([e for e in events if e["event"] == "job.output"]) >= 2  # streamed
    (replica,) = _running_replicas(cluster, "TextGenerator")
    assert replica["node_id"] == cluster.node_id(cluster.workers[1])


@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_prometheus_sees_busques_metrics_from_the_nodes_that_do_the_work(cluster, busque, tmp_path):
    """A real Prometheus scrapes Ray's metrics port on every node and the Gateway's /metrics;
    after jobs, a webhook, a text generation, an ingest and a search, every query of the
    Grafana dashboard has data, and the embedder's batches are exported by the model node."""
    from busque.testing.prometheus import prometheus
    from tests.test_metrics import (
        assert_every_query_has_data,
        counts,
        require_prometheus,
        wait_for_counts,
        work,
    )
    from tests.test_webhooks_e2e import Receiver, poll

    require_prometheus()
    metrics_ports = {node.ip: f"{node.ip}:{node.ports['metrics']}" for node in cluster.nodes}
    jobs = {
        "ray": list(metrics_ports.values()),
        "busque": [urlsplit(cluster.head.serve_url).netloc],
    }
    with prometheus(tmp_path / "prometheus", jobs) as server:
        poll(server.targets_up, lambda up: list(up.values()) == [1.0] * 4, timeout=30)
        collection = f"metrics-{uuid.uuid4().hex[:8]}"
        receiver = Receiver()
        try:
            with busque.client(cluster.workers[0]) as api:
                created = api.put(f"/v1/collections/{collection}", json={"faces": False})
                assert created.status_code == 200, created.text
                # Two rounds: a series shows in Prometheus at its first increment, which the
                # dashboard's rate() panels only see change from the second on.
                for image in ("coffee", "rocket"):
                    before = counts(server)
                    grown = work(api, receiver, collection, image, text=True)
                    wait_for_counts(server, {k: before.get(k, 0) + n for k, n in grown.items()})
        finally:
            receiver.close()
        assert_every_query_has_data(server, "busque", text=True)
        batches = server.by("sum by (instance) (ray_busque_embed_batch_size_count)", "instance")
        assert set(batches) == {metrics_ports[cluster.workers[1].ip]}, batches


def _get(api: httpx.Client, path: str) -> int | str:
    try:
        return api.get(path).status_code
    except httpx.HTTPError as e:
        return repr(e)


# -- batch work and a node failure on the cluster -------------------------------------------


def _photos(folder, count: int, seed: int = 0) -> list[bytes]:
    """`count` distinct small JPEGs (random blocks: far apart in pHash and embedding)."""
    import io

    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    photos = []
    for i in range(count):
        blocks = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        image = Image.fromarray(blocks).resize((96, 96), Image.NEAREST)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        (folder / f"photo_{i:02d}.jpg").write_bytes(buffer.getvalue())
        photos.append(buffer.getvalue())
    return photos


def _backfill_report(busque, root: str, report_dir, *flags: str) -> dict:
    """`python -m pipelines.backfill` as a Ray job (its driver runs on the head); its report."""
    report = report_dir / f"report_{uuid.uuid4().hex[:6]}.json"
    busque.cluster.submit(
        "python", "-m", "pipelines.backfill", root, "--tenant", "cluster", "--quiet",
        "--report", str(report), *flags,
        runtime_env_json=json.dumps({"env_vars": busque.env}),
        timeout=300,
    )  # fmt: skip
    return json.loads(report.read_text())


@pytest.mark.postgres
@pytest.mark.timeout(480)
def test_a_folder_on_the_drivers_node_is_read_whole(cluster, busque):
    """The workers cannot see the job driver's folder (their own mount namespace): the stages
    that open its files are pinned to the driver's node, so every file is read (before, 16-18 of
    25 failed with "No such file or directory" and the backfill exited 0)."""
    if not cluster.isolated:
        pytest.skip("mount namespaces are not allowed here: every node sees every file")
    library = cluster.driver_dir / "library"
    _photos(library, 12, seed=1)
    report = _backfill_report(
        busque, str(library), cluster.driver_dir, "--no-embeddings", "--collection", "local"
    )
    assert report["failures"] == [], report["failures"]
    assert report["files_seen"] == 12 and report["uploaded"] == 12, report


@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_an_s3_library_is_backfilled_reindexed_and_searched(cluster, busque, seaweedfs_server):
    """An S3 prefix is read from any node; reindex rebuilds the collection as a Ray job; two
    Matchers on different nodes answer a search alike, the backfilled photo first."""
    from minio import Minio

    photos = _photos(cluster.driver_dir / "s3-library", 6, seed=2)
    s3 = Minio(
        seaweedfs_server["endpoint"],
        seaweedfs_server["access_key"],
        seaweedfs_server["secret_key"],
        secure=False,
    )
    bucket = f"library-{uuid.uuid4().hex[:8]}"
    s3.make_bucket(bucket)
    for i, data in enumerate(photos):
        s3.put_object(bucket, f"pets/photo_{i}.jpg", io.BytesIO(data), len(data), "image/jpeg")
    report = _backfill_report(
        busque, f"s3://{bucket}/pets", cluster.driver_dir, "--no-faces", "--collection", "pets"
    )
    assert report["failures"] == [] and report["uploaded"] == 6, report

    out = busque.cluster.submit(
        "python", "-m", "pipelines.reindex", "--tenant", "cluster", "--collection", "pets",
        runtime_env_json=json.dumps({"env_vars": busque.env}),
        timeout=300,
    )  # fmt: skip
    assert '"count": 6' in out, out

    matchers = cluster.actors(class_name_contains="busque:Matcher")
    assert len({a["node_id"] for a in matchers}) == 2, matchers

    def search(node: Node) -> list[dict]:
        with busque.client(node) as api:
            found = api.post(
                "/v1/search",
                files={"image": ("q.jpg", photos[3], "image/jpeg")},
                data={"collection": "pets", "k": "3"},
            )
        assert found.status_code == 200, found.text
        return [(m["media_id"], m["exact_duplicate"]) for m in found.json()["matches"]]

    deadline = time.monotonic() + 60
    answers: list = []
    while len(answers) < 8:  # eight agreeing answers in a row, through every node's proxy
        answer = search(cluster.nodes[len(answers) % 3])
        if answer and answer[0][1] and answer == (answers or [answer])[0]:
            answers.append(answer)
        else:  # a Matcher that has not loaded the snapshot yet (each syncs on its own)
            answers = []
            assert time.monotonic() < deadline, answer
            time.sleep(0.5)


@pytest.mark.postgres
@pytest.mark.timeout(480)
def test_bench_cluster_measures_this_cluster(cluster, busque):
    """bench/cluster.py starts clusters of its own (minutes, too long for this suite): its
    measurements run here on this module's cluster, a closed loop of jobs and of searches over
    every node's proxy and each node's memory, giving every figure its page reads."""
    import asyncio

    from bench import cluster as bench

    bare = bench.node_memory(cluster)
    served = asyncio.run(bench.load(cluster, busque.key, bench.photos(2), seconds=1.0))
    serving = bench.node_memory(cluster)
    assert set(bare) == set(serving) == {node.name for node in cluster.nodes}, serving
    assert min(serving.values()) > 0.05, serving  # GiB: a Ray node's servers and agents
    run = {"deploy_s": 1.0, **served}
    figures = {name: bench.figure(run, path) for name, path, _ in bench.FIGURES}
    assert min(figures.values()) > 0, figures


def test_jobs_accepted_while_the_model_node_dies_end_once(cluster, busque):
    """SIGKILL the node that holds the model replicas with jobs in flight and more arriving:
    every accepted job ends, once, after the node returns and its replicas are rescheduled."""
    from tests.test_events import read_job_sse

    model_node = cluster.workers[1]
    with busque.client(cluster.head) as api:

        def submit(i: int) -> str:
            created = api.post("/v1/jobs", json={"model": "echo", "input": {"n": i}})
            assert created.status_code == 202, created.text
            return created.json()["id"]

        jobs = [submit(i) for i in range(10)]
        cluster.kill(model_node)
        killed = time.monotonic()
        jobs += [submit(i) for i in range(10, 20)]  # accepted while the node is gone
        cluster.restart(model_node)
        for i, job_id in enumerate(jobs):
            job = wait_for(api, job_id, timeout=240)
            assert job["status"] == "succeeded", job
            assert job["result"] == {"echo": {"n": i}}
            events = read_job_sse(api, job_id, timeout=30)
            results = [e for e in events if e["event"] == "job.result"]
            assert len(results) == 1, events  # ran to its end once
        print(f"\nevery job terminal {time.monotonic() - killed:.1f}s after the node died")
        assert _get(api, "/readyz") == 200
