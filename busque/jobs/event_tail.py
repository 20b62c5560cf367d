"""Follow the job_events table and fan new events out to in-process subscribers.

One poller per process serves every SSE stream, WebSocket, long-poll and gRPC stream in it.
It polls only while someone listens, following the table's row ids with an IdFollower (ids may
commit out of order on PostgreSQL), so no event is missed. (Clients see each event's number
within its tenant as its id; the row id stays here.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from busque.db.follow import IdFollower
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
        self.keep_place_s = 30.0
        self._subscribers: set[Subscription] = set()
        self._follow: IdFollower | None = None  # None until someone listens
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

    async def _start(self) -> None:
        async with self._starting:
            if self._follow is not None:
                return
            # Start from now, but watch the ids missing just below: they may belong to
            # transactions still open.
            last, missing = await asyncio.to_thread(self.store.recent_gaps, 200)
            self._follow = IdFollower(last, missing, self.gap_s)

    async def _run(self) -> None:
        while True:
            if not self._subscribers:
                # Nobody listens. Keep our place for a while (the next long-poll or stream needs
                # no fresh start, just a catch-up poll); after that, start afresh.
                self._idle.clear()
                try:
                    await asyncio.wait_for(self._idle.wait(), self.keep_place_s)
                except TimeoutError:
                    self._follow = None
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
        follow = self._follow
        events = await asyncio.to_thread(
            self.store.events_since, follow.last_id, follow.to_recheck()
        )
        for event in events:
            follow.saw(event["row"])
            for sub in list(self._subscribers):
                if sub.match(event):
                    sub.queue.put_nowait(event)
