"""The webhook deliverer: claims due deliveries from the outbox and sends each on its own task.

No delivery waits for another: a slow receiver holds only its own deliveries. At most
`webhooks.max_in_flight` attempts run at once, and at most `webhooks.per_destination` to one
host and port; a delivery claimed while its destination is at that limit goes back to the outbox
for a moment, without counting an attempt. Each attempt ends by `webhooks.timeout_s` whatever
the receiver does (busque.jobs.webhooks.deliver). Ray-free; the Dispatcher runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import httpx

from busque.config import WebhookSettings
from busque.jobs import webhooks
from busque.jobs.backoff import backoff
from busque.jobs.outbox import WebhookOutbox
from busque.metrics import DELIVERED, FAILED_ATTEMPT, GIVEN_UP, Metrics

logger = logging.getLogger("busque.webhooks")

CLAIM_BATCH = 32
IDLE_S = 0.2  # how often an idle deliverer looks for due deliveries
BUSY_RETRY_S = 0.5  # a delivery whose destination is busy is due again this much later


def destination(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


# A front door's webhook body (busque.doors): the delivery row -> the JSON to send. Runs in a
# worker thread (it may read the job and presign its files).
PayloadFormat = Callable[[dict], dict]


class UnknownFormat(LookupError):
    pass


class WebhookDeliverer:
    def __init__(
        self,
        settings: WebhookSettings,
        outbox: WebhookOutbox,
        metrics: Metrics,
        formats: Mapping[str, PayloadFormat] | None = None,
    ):
        self.settings = settings
        self.outbox = outbox
        self.metrics = metrics
        self.formats = dict(formats or {})
        self.in_flight: set[asyncio.Task] = set()
        self.by_destination: Counter[str] = Counter()
        self._http: httpx.AsyncClient | None = None
        self._done = asyncio.Event()  # an attempt ended: there is room again

    async def run(self) -> None:
        self._http = httpx.AsyncClient(follow_redirects=False)
        try:
            while True:
                try:
                    claimed = await self._claim_and_start()
                except Exception:
                    logger.exception("webhook loop error")
                    claimed = 0
                if claimed == CLAIM_BATCH:
                    continue  # more may be due
                self._done.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._done.wait(), IDLE_S)
        finally:
            for task in self.in_flight:
                task.cancel()
            await self._http.aclose()

    async def _claim_and_start(self) -> int:
        room = min(CLAIM_BATCH, self.settings.max_in_flight - len(self.in_flight))
        if room <= 0:
            return 0
        lock_s = self.settings.timeout_s * 3  # outlasts an attempt, which ends by timeout_s
        due = await asyncio.to_thread(self.outbox.claim_deliveries, room, lock_s)
        busy = []
        for delivery in due:
            where = destination(delivery["url"])
            if self.by_destination[where] >= self.settings.per_destination:
                busy.append(delivery["id"])
                continue
            self.by_destination[where] += 1
            task = asyncio.create_task(self._deliver(delivery, where), name="webhook")
            self.in_flight.add(task)
        if busy:
            await asyncio.to_thread(self.outbox.postpone, busy, time.time() + BUSY_RETRY_S)
        return len(due)

    async def _deliver(self, delivery: dict, where: str) -> None:
        try:
            await self._attempt(delivery)
        except Exception:
            logger.exception("webhook delivery %s failed", delivery["id"])
        finally:
            self.by_destination[where] -= 1
            self.in_flight.discard(asyncio.current_task())
            self._done.set()

    async def _body(self, delivery: dict) -> dict:
        """Standard Webhooks' payload, or the body of the front door the webhook was set by."""
        name = delivery["payload"].get("format")
        if not name:
            return webhooks.payload_for(delivery["payload"])
        render = self.formats.get(name)
        if render is None:
            raise UnknownFormat(f"no webhook format {name!r} on this dispatcher")
        return await asyncio.to_thread(render, delivery)

    async def _send(self, delivery: dict) -> webhooks.DeliveryOutcome:
        try:
            body = await self._body(delivery)
        except UnknownFormat as exc:  # never deliverable here: not retried
            return webhooks.DeliveryOutcome(False, None, f"refused: {exc}", 0.0, "")
        except Exception as exc:  # e.g. the database was unreachable: tried again later
            logger.warning("webhook body of %s failed: %r", delivery["id"], exc)
            return webhooks.DeliveryOutcome(False, None, f"body not rendered: {exc}", 0.0, "")
        hooks = self.settings
        return await webhooks.deliver(
            self._http,
            delivery["url"],
            delivery["secret"],
            delivery["id"],
            body,
            hooks.allow_networks,
            hooks.timeout_s,
        )

    async def _attempt(self, delivery: dict) -> None:
        hooks = self.settings
        outcome = await self._send(delivery)
        attempts = delivery["attempts"] + 1
        retry = not outcome.ok and attempts < hooks.max_attempts
        refused = (outcome.error or "").startswith("refused")
        next_at = None
        if retry and not refused:
            next_at = time.time() + backoff(attempts, hooks.backoff_s, hooks.backoff_max_s)
        record = {
            "ok": outcome.ok,
            "status": outcome.status,
            "error": outcome.error,
            "duration_ms": round(outcome.duration_ms, 1),
            "response_excerpt": outcome.response_excerpt,
        }
        await asyncio.to_thread(self.outbox.record_delivery, delivery, record, next_at)
        if outcome.ok:
            self.metrics.webhook(DELIVERED)
        else:
            self.metrics.webhook(FAILED_ATTEMPT if next_at is not None else GIVEN_UP)
