"""busque's metrics recorded with `ray.util.metrics` in the replicas that do the work.

Ray's metrics agent on each node exports them, cumulative, on that node's metrics export port
(`ray start --metrics-export-port`; the `MetricsExportPort` of `ray.nodes()`), beside Ray's and
Serve's own, with the prefix `ray_` and Ray's labels (`WorkerId`, `NodeAddress`, `SessionName`,
...). Counters get the suffix `_total`. What Prometheus sees:

    ray_busque_jobs_finished_total{model, state}          jobs that reached succeeded/failed/canceled
    ray_busque_job_duration_seconds_bucket{model, le}     run time of the attempt that finished a job
    ray_busque_job_queue_wait_seconds_bucket{model, le}   created -> first attempt claimed
    ray_busque_generated_tokens_total{model}              new tokens of finished generations
    ray_busque_time_to_first_token_seconds_bucket{model, le}
    ray_busque_embed_batch_size_bucket{le}                images per Embedder forward pass
    ray_busque_webhook_deliveries_total{outcome}          delivered | failed | given_up
    ray_busque_index_vectors{tenant, collection}          per Matcher replica (WorkerId)

Ray exports a histogram's `_sum` from bucket midpoints, not from the values observed: read
quantiles from the buckets. The batch-size buckets sit at n + 0.5, so their midpoints are the
whole numbers themselves and `_sum / _count` is the exact mean batch.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from ray.util import metrics

from busque.metrics import Metrics

logger = logging.getLogger("busque.metrics")

SECONDS_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600]
FIRST_TOKEN_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
BATCH_BUCKETS = [n + 0.5 for n in (*range(16), 24, 32, 48, 64, 128)]


def _never_raises(method: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(method)
    def record(self, *args: Any) -> None:
        try:
            method(self, *args)
        except Exception:  # a metric must never fail the work it measures
            logger.exception("recording %s%r failed", method.__name__, args)

    return record


class RayMetrics(Metrics):
    """Each instrument is registered on first use, so a replica exports only what it records."""

    @functools.cached_property
    def _jobs_finished(self) -> metrics.Counter:
        return metrics.Counter(
            "busque_jobs_finished",
            "Jobs that reached a final state, by model and state",
            tag_keys=("model", "state"),
        )

    @functools.cached_property
    def _job_duration(self) -> metrics.Histogram:
        return metrics.Histogram(
            "busque_job_duration_seconds",
            "Run time of the attempt that finished a job",
            boundaries=SECONDS_BUCKETS,
            tag_keys=("model",),
        )

    @functools.cached_property
    def _queue_wait(self) -> metrics.Histogram:
        return metrics.Histogram(
            "busque_job_queue_wait_seconds",
            "Time from a job's creation to the claim of its first attempt",
            boundaries=SECONDS_BUCKETS,
            tag_keys=("model",),
        )

    @functools.cached_property
    def _tokens(self) -> metrics.Counter:
        return metrics.Counter(
            "busque_generated_tokens",
            "New tokens of finished text generations",
            tag_keys=("model",),
        )

    @functools.cached_property
    def _first_token(self) -> metrics.Histogram:
        return metrics.Histogram(
            "busque_time_to_first_token_seconds",
            "Time from a generation request to its first text",
            boundaries=FIRST_TOKEN_BUCKETS,
            tag_keys=("model",),
        )

    @functools.cached_property
    def _embed_batch(self) -> metrics.Histogram:
        return metrics.Histogram(
            "busque_embed_batch_size",
            "Images per Embedder forward pass",
            boundaries=BATCH_BUCKETS,
        )

    @functools.cached_property
    def _webhooks(self) -> metrics.Counter:
        return metrics.Counter(
            "busque_webhook_deliveries",
            "Webhook delivery attempts by outcome (delivered, failed and retried later, given up)",
            tag_keys=("outcome",),
        )

    @functools.cached_property
    def _index_vectors(self) -> metrics.Gauge:
        return metrics.Gauge(
            "busque_index_vectors",
            "Items in a Matcher replica's live index of a collection",
            tag_keys=("tenant", "collection"),
        )

    @_never_raises
    def job_started(self, model: str, wait_s: float) -> None:
        self._queue_wait.observe(max(0.0, float(wait_s)), tags={"model": str(model)})

    @_never_raises
    def job_finished(self, model: str, state: str, run_s: float | None) -> None:
        self._jobs_finished.inc(tags={"model": str(model), "state": str(state)})
        if run_s is not None:
            self._job_duration.observe(max(0.0, float(run_s)), tags={"model": str(model)})

    @_never_raises
    def tokens(self, model: str, n: int) -> None:
        if n > 0:
            self._tokens.inc(int(n), tags={"model": str(model)})

    @_never_raises
    def first_token(self, model: str, seconds: float) -> None:
        self._first_token.observe(max(0.0, float(seconds)), tags={"model": str(model)})

    @_never_raises
    def embed_batch(self, size: int) -> None:
        self._embed_batch.observe(int(size))

    @_never_raises
    def webhook(self, outcome: str) -> None:
        self._webhooks.inc(tags={"outcome": str(outcome)})

    @_never_raises
    def index_size(self, tenant: str, collection: str, vectors: int) -> None:
        self._index_vectors.set(int(vectors), tags={"tenant": tenant, "collection": collection})


@functools.cache
def ray_metrics() -> RayMetrics:
    """The replica's one RayMetrics (Ray registers each metric name once per process)."""
    return RayMetrics()
