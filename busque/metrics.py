"""What busque measures while it works, as one small interface (Ray-free, imports nothing of
busque): the job loop (busque.jobs.dispatcher) and the deployments call a `Metrics`; the Serve
replicas hand them busque.serve.metrics.RayMetrics, which records them with `ray.util.metrics`
so they appear, cumulative, on Ray's metrics endpoint beside `ray_serve_*`. Everything else (unit
tests, pipelines, a Dispatcher built by hand) gets `NO_METRICS`, which records nothing.

Each method records one event; none may raise into the work it measures.
"""

from __future__ import annotations

from typing import Protocol

# The outcomes of one webhook delivery attempt (the `outcome` label).
DELIVERED = "delivered"  # the receiver answered 2xx
FAILED_ATTEMPT = "failed"  # it did not; the delivery is retried later
GIVEN_UP = "given_up"  # it did not, and no attempt is left (or the URL is refused)


class Metrics(Protocol):
    def job_started(self, model: str, wait_s: float) -> None:
        """A job's first attempt was claimed `wait_s` after the job was created."""

    def job_finished(self, model: str, state: str, run_s: float | None) -> None:
        """A job reached its final state (succeeded, failed, canceled); `run_s`: how long the
        attempt that finished it ran (None where unknown, e.g. a job failed by the reaper)."""

    def tokens(self, model: str, n: int) -> None:
        """A generation finished with `n` new tokens."""

    def first_token(self, model: str, seconds: float) -> None:
        """A generation's first text arrived `seconds` after its request."""

    def embed_batch(self, size: int) -> None:
        """The Embedder ran one forward pass over `size` images."""

    def webhook(self, outcome: str) -> None:
        """One webhook delivery attempt ended: DELIVERED, FAILED_ATTEMPT or GIVEN_UP."""

    def index_size(self, tenant: str, collection: str, vectors: int) -> None:
        """A Matcher replica's live index of (tenant, collection) holds `vectors` items now."""


class NoMetrics:
    """Records nothing."""

    def job_started(self, model: str, wait_s: float) -> None:
        pass

    def job_finished(self, model: str, state: str, run_s: float | None) -> None:
        pass

    def tokens(self, model: str, n: int) -> None:
        pass

    def first_token(self, model: str, seconds: float) -> None:
        pass

    def embed_batch(self, size: int) -> None:
        pass

    def webhook(self, outcome: str) -> None:
        pass

    def index_size(self, tenant: str, collection: str, vectors: int) -> None:
        pass


NO_METRICS: Metrics = NoMetrics()
