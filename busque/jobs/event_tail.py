"""Follow the job_events table and fan new events out to in-process subscribers.

One poller per process serves every SSE stream, WebSocket, long-poll and gRPC stream in it.
It polls only while someone listens. Event ids come from a sequence, and on PostgreSQL a
transaction holding a smaller id can commit after a larger one is already visible: ids skipped
over are remembered as gaps and looked for again for `gap_s` seconds, so no event is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from busque.jobs.store import JobStore

logger = logging.getLogger("busque.events")

Match = Callable[[dict], bool]


class Subscription:
    def __init__(self, tail: EventTail, match: Match):
        self.tail = tail
        self.match = match
        self.queue: asyncio.Queue[dict] = asyncio.Queue()

    async def get(self, timeout: float | None = None) -> dict | None:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None

    def close(self) -> None:
        self.tail._subscribers.discard(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class EventTail:
    def __init__(
        self, store: JobStore, poll_s: float, gap_s: float = 5.0, min_interval_s: float = 0.005
    ):
        self.store = store
        self.poll_s = poll_s
        self.gap_s = gap_s
        self.min_interval_s = min_interval_s  # under load, one poll serves many commits
        self._subscribers: set[Subscription] = set()
        self._last_id: int | None = None
        self._gaps: dict[int, float] = {}  # missing id -> when to stop looking for it
        self._task: asyncio.Task | None = None
        self._idle = asyncio.Event()
        self._nudged = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._starting = asyncio.Lock()

    def nudge_threadsafe(self) -> None:
        """New events were committed (a database notification): poll now, from any thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._nudged.set)

    async def subscribe(self, match: Match) -> Subscription:
        """Follow the events that `match`; every event committed after this returns reaches the
        subscription, so a caller may replay the past from the database right after it."""
        sub = Subscription(self, match)
        self._subscribers.add(sub)
        self._loop = asyncio.get_running_loop()
        await self._start()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="event-tail")
        self._idle.set()
        return sub

    async def job(self, job_id: str) -> Subscription:
        return await self.subscribe(lambda e: e["job_id"] == job_id)

    async def tenant(self, tenant_id: str) -> Subscription:
        return await self.subscribe(lambda e: e["tenant_id"] == tenant_id)

    async def _start(self) -> None:
        async with self._starting:
            if self._last_id is not None:
                return
            # Start from now, but watch the ids missing just below: they may belong to
            # transactions still open.
            last, missing = await asyncio.to_thread(self.store.recent_gaps, 1000)
            self._gaps = dict.fromkeys(missing, time.monotonic() + self.gap_s)
            self._last_id = last

    async def _run(self) -> None:
        while True:
            if not self._subscribers:
                self._last_id = None  # nobody listens: start afresh on the next subscriber
                self._idle.clear()
                await self._idle.wait()
            try:
                await self._start()
                await self._poll_once()
            except Exception:
                logger.exception("event tail poll failed")
                await asyncio.sleep(1)
            await asyncio.sleep(self.min_interval_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudged.wait(), self.poll_s)
            self._nudged.clear()

    async def _poll_once(self) -> None:
        now = time.monotonic()
        self._gaps = {i: until for i, until in self._gaps.items() if until > now}
        events = await asyncio.to_thread(self.store.events_since, self._last_id, list(self._gaps))
        for event in events:
            if event["id"] > self._last_id:
                for missing in range(self._last_id + 1, event["id"]):
                    self._gaps[missing] = now + self.gap_s
                self._last_id = event["id"]
            else:
                self._gaps.pop(event["id"], None)
            for sub in list(self._subscribers):
                if sub.match(event):
                    sub.queue.put_nowait(event)
