"""procrastinate on PostgreSQL (BENCH_PROCRASTINATE_DSN, a libpq connection string)."""

from __future__ import annotations

import os

import procrastinate

app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(
        conninfo=os.environ.get("BENCH_PROCRASTINATE_DSN", "postgresql:///procrastinate")
    )
)


@app.task(name="noop")
async def noop(n):  # async: procrastinate's worker is asyncio, a sync task would take a thread
    return {"echo": n}
