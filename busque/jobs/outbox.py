"""The webhook outbox's delivery side: claim due deliveries, record each attempt, list them.

The job store writes a delivery row for each event a job's webhook subscribes to, in the
event's own transaction (JobStore._emit); this class is how the deliverer (the dispatcher's
webhook loop, with busque.jobs.webhooks) and the API read and update those rows.
"""

from __future__ import annotations

import time

from sqlalchemy import Engine, or_, select, update

from busque.db.engine import is_postgres, readonly
from busque.db.schema import webhook_deliveries


class WebhookOutbox:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.reader = readonly(engine)
        self._skip_locked = is_postgres(engine)

    def claim_deliveries(self, limit: int, lock_s: float) -> list[dict]:
        """Lock up to `limit` due pending deliveries for `lock_s` seconds and return them; a
        deliverer that dies leaves them to be claimed again once the lock passes."""
        now = time.time()
        due = (
            select(webhook_deliveries.c.id)
            .where(
                webhook_deliveries.c.state == "pending",
                webhook_deliveries.c.next_attempt_at <= now,
                or_(
                    webhook_deliveries.c.locked_until.is_(None),
                    webhook_deliveries.c.locked_until < now,
                ),
            )
            .order_by(webhook_deliveries.c.next_attempt_at)
            .limit(limit)
        )
        if self._skip_locked:
            due = due.with_for_update(skip_locked=True)
        with self.engine.begin() as conn:
            ids = conn.execute(due).scalars().all()  # first, as in JobStore.claim()
            if not ids:
                return []
            rows = conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id.in_(ids))
                .values(locked_until=now + lock_s)
                .returning(*webhook_deliveries.c)
            ).all()
        return [r._asdict() for r in rows]

    def record_delivery(self, delivery: dict, outcome: dict, next_attempt_at: float | None) -> None:
        """Append an attempt to the delivery log; next_attempt_at None means no more tries."""
        now = time.time()
        attempts = delivery["attempts"] + 1
        if outcome["ok"]:
            state = "succeeded"
        else:
            state = "pending" if next_attempt_at is not None else "failed"
        entry = {"attempt": attempts, "at": now} | outcome
        with self.engine.begin() as conn:
            current = conn.execute(
                select(webhook_deliveries.c.log).where(webhook_deliveries.c.id == delivery["id"])
            ).scalar_one()
            conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id == delivery["id"])
                .values(
                    state=state,
                    attempts=attempts,
                    next_attempt_at=next_attempt_at or now,
                    locked_until=None,
                    last_status=outcome.get("status"),
                    last_error=outcome.get("error"),
                    log=[*current, entry],
                    delivered_at=now if outcome["ok"] else None,
                )
            )

    def postpone(self, ids: list[str], until: float) -> None:
        """Give claimed deliveries back, due at `until`, without counting an attempt."""
        with self.engine.begin() as conn:
            conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id.in_(ids))
                .values(next_attempt_at=until, locked_until=None)
            )

    def deliveries(self, job_id: str) -> list[dict]:
        """A job's deliveries, in event order."""
        with self.reader.connect() as conn:
            rows = conn.execute(
                select(webhook_deliveries)
                .where(webhook_deliveries.c.job_id == job_id)
                .order_by(webhook_deliveries.c.event_id)
            )
            return [r._asdict() for r in rows]
