"""The HTTP peer of bench/serve_hop.py: a callee as a FastAPI service under uvicorn (one worker),
the way two Python services call each other without Ray.

    uvicorn bench.peers.hop_fastapi:app --port P

POST /busy and /sleep take {"seconds"} and answer [started, ended] (time.perf_counter: one
clock for every process on Linux), as the Serve deployment and the Ray actor do.
"""

from __future__ import annotations

import asyncio
import time

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Work(BaseModel):
    seconds: float


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


@app.post("/busy")
async def run_busy(work: Work) -> list[float]:
    started = time.perf_counter()
    busy(work.seconds)
    return [started, time.perf_counter()]


@app.post("/sleep")
async def run_sleep(work: Work) -> list[float]:
    started = time.perf_counter()
    await asyncio.sleep(work.seconds)
    return [started, time.perf_counter()]
