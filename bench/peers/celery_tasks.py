"""Celery's side of the jobs benchmark: two apps with the same no-op, as Celery's docs pair
them: `redis_app`, Redis as broker and result backend (BENCH_REDIS_URL, database 0), and
`rabbitmq_app`, RabbitMQ as broker with the RPC result backend (BENCH_AMQP_URL), the pairing of
Celery's "First steps"."""

from __future__ import annotations

import os

from celery import Celery

REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
AMQP = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def make(name: str, broker: str, backend: str) -> Celery:
    app = Celery(name, broker=broker, backend=backend)
    app.conf.update(
        # Celery's "Optimizing" guide: many short tasks want a higher prefetch than the default
        # 4 a process, so a worker's 2 processes may reserve all 32 jobs the clients keep in
        # flight.
        worker_prefetch_multiplier=16,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        result_serializer="json",
    )

    @app.task(name="noop")
    def noop(n):
        return {"echo": n}

    return app


redis_app = make("bench_jobs_redis", f"{REDIS}/0", f"{REDIS}/0")
rabbitmq_app = make("bench_jobs_rabbitmq", AMQP, "rpc://")
