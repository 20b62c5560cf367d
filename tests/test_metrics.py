"""busque's metrics as an operator sees them. A real Prometheus scrapes Ray's metrics export port
(`ray_serve_*` and the replicas' `ray_busque_*`) and the Gateway's /metrics while the session's
app works; every query of the Grafana dashboard (deploy/grafana/busque.json) then returns data,
and the job counters only ever grow. Also, without Ray: what the Dispatcher records.

Prometheus is Debian's `prometheus` package; the test skips without it unless
BUSQUE_REQUIRE_PROMETHEUS=1 (.ci/run installs it and sets that)."""

from __future__ import annotations

import ast
import asyncio
import json
import math
import os
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from busque.testing.prometheus import Prometheus, prometheus_binary
from busque.testing.prometheus import prometheus as scraping
from tests.conftest import FAST_JOBS, wait_for
from tests.test_ingest import jpeg, photo
from tests.test_jobs_api import submit
from tests.test_webhooks_e2e import Receiver, poll

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "busque.json"
TEXT_MODEL = "smollm2-135m-instruct"
# What the test puts in place of the dashboard's variables ($application: the app's name).
RATE_INTERVAL = "2m"

# Ray's metrics agent exports what replicas record every `metrics_report_interval_ms` (10 s).
EXPORT_WAIT_S = 40


# ---- the dashboard's queries ------------------------------------------------------------------


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(board: dict) -> list[dict]:
    """Every panel but rows, including those inside collapsed rows."""
    found = []
    for panel in board["panels"]:
        if panel["type"] == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def queries(board: dict, application: str) -> list[tuple[str, str]]:
    """(panel title, PromQL with the template variables filled in) for every target."""
    values = {
        "__rate_interval": RATE_INTERVAL,
        "__interval": "15s",
        "application": application,
    }
    found = []
    for panel in panels(board):
        for target in panel["targets"]:
            expr = re.sub(
                r"\$\{?(\w+)\}?", lambda m: values.get(m.group(1), m.group(0)), target["expr"]
            )
            assert "$" not in expr, f"{panel['title']}: unknown variable in {expr}"
            found.append((panel["title"], expr))
    return found


def test_the_dashboard_is_a_grafana_10_dashboard_on_a_prometheus_variable():
    board = dashboard()
    assert board["schemaVersion"] >= 36 and board["uid"] and board["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in board["panels"]]
    ids += [p["id"] for row in board["panels"] for p in row.get("panels", [])]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels(board):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"], panel["title"]
    titles = " | ".join(p["title"] for p in panels(board)).lower()
    for wanted in (
        "http requests",
        "http latency",
        "replicas",
        "jobs finished",
        "run time",
        "queue wait",
        "queue depth",
        "tokens/s",
        "first token",
        "batch size",
        "webhook",
        "index size",
    ):
        assert wanted in titles, f"no panel about {wanted}: {titles}"
    # Every busque metric the replicas record is on the dashboard.
    recorded = re.findall(r'"(busque_\w+)"', (ROOT / "busque/serve/metrics.py").read_text())
    exprs = " ".join(expr for _, expr in queries(board, "busque"))
    assert len(recorded) == 8
    for name in recorded:
        assert f"ray_{name}" in exprs, f"ray_{name} is on no panel"


# ---- Prometheus ----------------------------------------------------------------------------------


def require_prometheus() -> None:
    """Skips without Debian's `prometheus` package, unless BUSQUE_REQUIRE_PROMETHEUS=1."""
    if prometheus_binary() is None:
        if os.environ.get("BUSQUE_REQUIRE_PROMETHEUS") == "1":
            pytest.fail("Prometheus is required (BUSQUE_REQUIRE_PROMETHEUS=1)")
        pytest.skip("Prometheus is not installed (Debian's `prometheus` package)")


@pytest.fixture(scope="module")
def prometheus(app, tmp_path_factory):
    require_prometheus()
    import ray

    ray_targets = [
        f"{node['NodeManagerAddress']}:{node['MetricsExportPort']}"
        for node in ray.nodes()
        if node["Alive"]
    ]
    assert ray_targets, ray.nodes()
    jobs = {"ray": ray_targets, "busque": [urlsplit(app.url).netloc]}
    with scraping(tmp_path_factory.mktemp("prometheus"), jobs) as server:
        # Both scrape jobs answer before any load is sent.
        poll(lambda: server.by("up", "job"), lambda up: up == {"ray": 1.0, "busque": 1.0})
        yield server


# ---- load through the app ------------------------------------------------------------------------


def text_available(app) -> bool:
    from busque.models.text.weights import unavailable_reason

    return unavailable_reason(app.settings) is None


def work(client, receiver: Receiver, collection: str, image: str, text: bool) -> dict[str, int]:
    """One batch of everything the dashboard shows: echo jobs (one with a webhook), a text
    generation, an ingest and a search. Returns what the counters of `counts` grow by, at
    least."""
    url = receiver.url()
    jobs = [submit(client, "echo", {"metrics": i}) for i in range(3)]
    jobs.append(submit(client, "sleep", {"seconds": 0.3}))
    jobs.append(submit(client, "echo", {"hook": 1}, webhook={"url": url, "events": ["job.result"]}))
    if text:
        jobs.append(submit(client, TEXT_MODEL, {"prompt": "Say hi"}, params={"max_new_tokens": 4}))
    form = {"collection": collection}
    files = {"image": ("p.jpg", jpeg(photo(image)), "image/jpeg")}
    accepted = client.post("/v1/ingest", files=files, data=form)
    assert accepted.status_code == 202, accepted.text
    jobs.append({"id": accepted.json()["job_id"], "model": "ingest"})
    grows: dict[str, int] = {
        "webhooks delivered": 1,
        "embedder forward passes": 1,
        "sleep jobs that ran over 0.25 s": 1,
    }
    if text:
        grows["tokens"] = 1
    for job in jobs:
        assert wait_for(client, job["id"], timeout=120)["status"] == "succeeded", job
        key = f"succeeded {job['model']}"
        grows[key] = grows.get(key, 0) + 1
    search = client.post("/v1/search", files=files, data=form)
    assert search.status_code == 200, search.text
    assert search.json()["matches"], search.json()
    poll(lambda: receiver.received(url), lambda got: len(got) == 1)
    return grows


def counts(prometheus: Prometheus) -> dict[str, float]:
    """The counters `work` makes grow, as Prometheus has them now."""
    found = {
        f"succeeded {model}": n
        for model, n in prometheus.by(
            'sum by (model) (ray_busque_jobs_finished_total{state="succeeded"})', "model"
        ).items()
    }
    for key, expr in (
        ("webhooks delivered", 'sum(ray_busque_webhook_deliveries_total{outcome="delivered"})'),
        ("embedder forward passes", "sum(ray_busque_embed_batch_size_count)"),
        ("tokens", "sum(ray_busque_generated_tokens_total)"),
        (
            "sleep jobs that ran over 0.25 s",
            'sum(ray_busque_job_duration_seconds_count{model="sleep"})'
            ' - sum(ray_busque_job_duration_seconds_bucket{model="sleep", le="0.25"})',
        ),
    ):
        found[key] = sum(prometheus.values(expr))
    return found


def wait_for_counts(prometheus: Prometheus, at_least: dict[str, float]) -> dict[str, float]:
    """Polls until each counter in Prometheus reaches `at_least` (Ray exports what replicas
    record every few seconds)."""
    return poll(
        lambda: counts(prometheus),
        lambda now: all(now.get(key, 0) >= n for key, n in at_least.items()),
        timeout=EXPORT_WAIT_S,
        interval=0.5,
    )


def finite(values: list[float]) -> list[float]:
    return [v for v in values if not math.isnan(v) and not math.isinf(v)]


def assert_every_query_has_data(prometheus: Prometheus, application: str, text: bool) -> None:
    """Every query of the dashboard answers with data (a number, not only NaN), within the time
    Ray takes to export; the token panels only where a text model ran."""
    wanted = queries(dashboard(), application)
    if not text:
        wanted = [(title, expr) for title, expr in wanted if "token" not in expr]
    empty: dict[str, str] = {}
    deadline = time.monotonic() + EXPORT_WAIT_S
    while True:
        empty = {
            f"{title}: {expr}": repr(prometheus.query(expr))
            for title, expr in wanted
            if not finite(prometheus.values(expr))
        }
        if not empty or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not empty, "queries without data:\n" + "\n".join(f"{k} -> {v}" for k, v in empty.items())


def test_every_dashboard_query_has_data_and_job_counters_only_grow(app, client, prometheus):
    collection = f"metrics-{time.time_ns()}"
    assert client.put(f"/v1/collections/{collection}", json={"faces": False}).status_code == 200
    receiver = Receiver()
    try:
        before = counts(prometheus)
        first = work(client, receiver, collection, "coffee", text_available(app))
        middle = wait_for_counts(prometheus, {k: before.get(k, 0) + n for k, n in first.items()})
        second = work(client, receiver, collection, "rocket", text_available(app))
        after = wait_for_counts(prometheus, {k: middle[k] + n for k, n in second.items()})
    finally:
        receiver.close()
    assert all(after[k] >= middle[k] >= before.get(k, 0) for k in middle)

    # Cumulative: no series of a counter (or a histogram's count) ever went down.
    for counter in (
        "ray_busque_jobs_finished_total",
        "ray_busque_job_duration_seconds_count",
        "ray_busque_job_queue_wait_seconds_count",
        "ray_busque_webhook_deliveries_total",
        "ray_busque_embed_batch_size_count",
    ):
        assert prometheus.values(f"sum(resets({counter}[10m]))") == [0.0], counter
    # The index gauge counts both photos of the collection.
    poll(
        lambda: prometheus.values(f'max(ray_busque_index_vectors{{collection="{collection}"}})'),
        lambda v: v == [2.0],
        timeout=EXPORT_WAIT_S,
        interval=0.5,
    )

    assert_every_query_has_data(prometheus, app.settings.serve.app_name, text_available(app))

    # The counters grew in the last minutes. (Not `increase()`: a series appears in Prometheus
    # at its first increment, which increase() and rate() cannot see, so a delivery by the
    # other Dispatcher replica, the first of its series, would read as no increase.)
    increases = [
        'ray_busque_jobs_finished_total{model="echo", state="succeeded"}',
        'ray_busque_webhook_deliveries_total{outcome="delivered"}',
        "ray_busque_embed_batch_size_count",
    ]
    if text_available(app):
        increases.append("ray_busque_generated_tokens_total")
    for counter in increases:
        before = f"(sum({counter} offset {RATE_INTERVAL}) or vector(0))"
        grew = prometheus.values(f"sum({counter}) - {before}")
        assert grew and grew[0] > 0, (counter, grew)


# ---- what the Dispatcher records (no Ray) ---------------------------------------------------------


class Recorder:
    """A Metrics that keeps every call."""

    def __init__(self):
        self.calls: list[tuple] = []

    def __getattr__(self, name: str):
        return lambda *args: self.calls.append((name, *args))

    def of(self, name: str) -> list[tuple]:
        return [c[1:] for c in self.calls if c[0] == name]


def test_the_dispatcher_records_jobs_and_webhook_outcomes(tmp_path):
    from busque.auth.keys import KeyStore
    from busque.config import Settings
    from busque.db.engine import make_engine
    from busque.db.migrate import upgrade
    from busque.db.schema import jobs
    from busque.jobs.dispatcher import Dispatcher, Route
    from busque.jobs.events import Failure, Result
    from busque.jobs.outbox import WebhookOutbox
    from busque.jobs.store import JobStore, NewJob

    url = f"sqlite:///{tmp_path / 'busque.db'}"
    upgrade(url)
    engine = make_engine(url)
    settings = Settings(
        home=tmp_path,
        jobs=FAST_JOBS,
        webhooks={"allow_networks": ["127.0.0.0/8"], "max_attempts": 2, "backoff_s": 0.05},
    )
    store = JobStore(engine, settings.jobs, ["job.result"])
    tenant = KeyStore(engine).ensure_tenant("acme")
    receiver = Receiver()
    good_hook, bad_hook = receiver.url(), receiver.url(fail_times=100)

    def job(model: str, webhook: str | None = None, **extra) -> dict:
        new = NewJob(
            tenant_id=tenant,
            model=model,
            input={},
            params={},
            max_attempts=extra.pop("max_attempts", 3),
            timeout_s=30,
            webhook={"url": webhook} if webhook else None,
        )
        return store.create(new)[0]

    # A job another dispatcher claimed and lost: its lease runs out on its only attempt.
    lost = job("lost", max_attempts=1)
    assert [j["id"] for j in store.claim("a-dead-dispatcher", 1)] == [lost["id"]]
    with engine.begin() as conn:
        conn.execute(jobs.update().where(jobs.c.id == lost["id"]).values(lease_expires_at=0))
    job("ok", good_hook)  # its result is delivered
    job("bad")  # fails for good
    job("ok", bad_hook)  # its result's delivery fails, is retried once, fails again: given up

    async def call(deployment: str, job: dict):
        await asyncio.sleep(0.05)
        yield Result({"fine": True}) if job["model"] == "ok" else Failure("boom", "no", False)

    recorder = Recorder()

    async def scenario() -> None:
        dispatcher = Dispatcher(
            settings,
            store,
            {"ok": Route("d"), "bad": Route("d"), "lost": Route("d")},
            call,
            WebhookOutbox(engine),
            recorder,
        )
        dispatcher.start()
        try:
            deadline = time.monotonic() + 20
            while len(recorder.of("webhook")) < 3 or len(recorder.of("job_finished")) < 4:
                assert time.monotonic() < deadline, recorder.calls
                await asyncio.sleep(0.05)
        finally:
            await dispatcher.stop()

    try:
        asyncio.run(scenario())
    finally:
        receiver.close()
        engine.dispose()

    finished = sorted(recorder.of("job_finished"), key=lambda c: (c[0], c[1]))
    assert [(model, state) for model, state, _ in finished] == [
        ("bad", "failed"),
        ("lost", "failed"),
        ("ok", "succeeded"),
        ("ok", "succeeded"),
    ]
    runs = {model: run_s for model, _, run_s in finished}
    assert runs["lost"] is None  # failed by the reaper: it never ran here
    assert 0.04 < runs["ok"] < 10 and 0.04 < runs["bad"] < 10
    started = recorder.of("job_started")
    assert sorted(model for model, _ in started) == ["bad", "ok", "ok"]  # not the lost one
    assert all(0 <= wait_s < 10 for _, wait_s in started)
    assert sorted(o for (o,) in recorder.of("webhook")) == ["delivered", "failed", "given_up"]


def test_the_metrics_interface_imports_nothing_but_the_standard_library():
    """busque/metrics.py is what the Ray-free layers (jobs, models, index, media) record through."""
    tree = ast.parse((ROOT / "busque" / "metrics.py").read_text())
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= {"__future__", "typing"}, imported
