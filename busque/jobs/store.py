"""The job store: every job's state lives here, and every change of it is an event row.

Writes by a running attempt are *fenced*: they only land while the job is still `running` that
very attempt, so a late writer (an attempt whose lease expired and was claimed again) can never
overwrite a newer one. Each event that a job's webhook subscribes to gets a delivery row in the
same transaction (an outbox), so no webhook is lost when a process dies. The delivery side of
the outbox is busque.jobs.outbox.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from busque.config import JobSettings, QuotaSettings
from busque.db.engine import is_postgres, readonly
from busque.db.event_numbers import next_number
from busque.db.pages import decode_cursor, encode_cursor
from busque.db.schema import (
    artifacts,
    job_events,
    job_labels,
    jobs,
    tenants,
    webhook_deliveries,
)
from busque.ids import new_id
from busque.jobs.backoff import backoff
from busque.jobs.fair_share import allocate

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "canceled",
)
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELED})
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELED)


def _with_labels(query):
    """Events with their job's labels (streams filter by them)."""
    return query.join(jobs, jobs.c.id == job_events.c.job_id)


def _event(row) -> dict:
    """A job_events row as the API sees it: `id` is the tenant's event number, `row` the
    table's own id, `labels` its job's."""
    event = row._asdict()
    event["row"] = event.pop("id")
    event["id"] = event.pop("seq")
    event["labels"] = event.get("labels") or {}
    return event


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different request."""


class TooManyJobs(Exception):
    """The tenant has `quotas.queued_jobs` jobs waiting already."""

    def __init__(self, limit: int):
        super().__init__(f"this tenant has {limit} jobs waiting to run: wait for some to start")
        self.limit = limit


@dataclass(frozen=True)
class NewJob:
    tenant_id: str
    model: str
    input: dict[str, Any]
    params: dict[str, Any]
    max_attempts: int
    timeout_s: float
    priority: int = 0
    webhook: dict[str, Any] | None = None
    idempotency_key: str | None = None
    labels: dict[str, str] = field(default_factory=dict)  # valid (busque.jobs.labels.check)
    # Objects the job takes as input, recorded as its artifacts with the job itself (none if
    # the job is refused): {"name", "object_key", "content_type", "size"}.
    input_artifacts: tuple[dict[str, Any], ...] = ()
    id: str = field(default_factory=lambda: new_id("job"))


def _labelled(tenant_id: str, key: str, value: str):
    """The ids of the tenant's jobs with label key=value (a subquery)."""
    return select(job_labels.c.job_id).where(
        job_labels.c.tenant_id == tenant_id, job_labels.c.key == key, job_labels.c.value == value
    )


def _subscribed(hook: dict | None, type_: str, data: dict, default_events: list[str]) -> bool:
    """Whether a job's webhook wants this event: its types, and (`statuses`, set by a front
    door) only job.status events of those statuses."""
    if not hook or type_ not in (hook.get("events") or default_events):
        return False
    statuses = hook.get("statuses")
    return not statuses or (type_ == "job.status" and data.get("status") in statuses)


def request_hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class JobStore:
    def __init__(
        self,
        engine: Engine,
        settings: JobSettings,
        default_webhook_events: list[str],
        quotas: QuotaSettings | None = None,
    ):
        self.engine = engine
        self.quotas = quotas or QuotaSettings()
        self.reader = readonly(engine)
        self.settings = settings
        self.default_webhook_events = default_webhook_events
        self._skip_locked = is_postgres(engine)

    # ---- creating and reading jobs (the API) ----

    def create(self, new: NewJob) -> tuple[dict, bool]:
        """Insert a queued job; returns (job, created). A repeated idempotency key returns the
        first job (created=False) or raises IdempotencyConflict if the request differs."""
        parts = [new.model, new.input, new.params, new.priority, new.webhook]
        if new.labels:  # only then: the hashes of jobs stored before labels stay the same
            parts.append(new.labels)
        digest = request_hash(*parts)
        now = time.time()
        row = dict.fromkeys(jobs.c.keys()) | {
            "id": new.id,
            "tenant_id": new.tenant_id,
            "model": new.model,
            "input": new.input,
            "params": new.params,
            "state": QUEUED,
            "priority": new.priority,
            "progress": 0.0,
            "attempt": 0,
            "max_attempts": new.max_attempts,
            "timeout_s": new.timeout_s,
            "run_after": now,
            "cancel_requested": False,
            "webhook": new.webhook,
            "idempotency_key": new.idempotency_key,
            "request_hash": digest,
            "created_at": now,
            "updated_at": now,
            "labels": new.labels or None,
        }
        try:
            self._insert(row, new.input_artifacts)
            return row, True
        except (IntegrityError, TooManyJobs):
            if new.idempotency_key is None:
                raise
            existing = self._by_idempotency_key(new.tenant_id, new.idempotency_key)
            if existing is None:  # the insert failed for another reason: surface that
                raise
        if existing["request_hash"] != digest:
            raise IdempotencyConflict("Idempotency-Key was already used with a different request")
        return existing, False

    def _insert(self, row: dict, input_artifacts: Sequence[dict] = ()) -> None:
        with self.engine.begin() as conn:
            quota = self.quotas
            if quota.tenants:
                quota = quota.of(self._tenant_names(conn, [row["tenant_id"]]).get(row["tenant_id"]))
            if limit := quota.queued_jobs:
                waiting = conn.execute(
                    select(func.count()).where(
                        jobs.c.tenant_id == row["tenant_id"], jobs.c.state == QUEUED
                    )
                ).scalar_one()
                if waiting >= limit:
                    raise TooManyJobs(limit)
            conn.execute(insert(jobs).values(row))
            if row["labels"]:
                conn.execute(
                    insert(job_labels),
                    [
                        {"job_id": row["id"], "tenant_id": row["tenant_id"], "key": k, "value": v}
                        for k, v in row["labels"].items()
                    ],
                )
            for artifact in input_artifacts:
                conn.execute(
                    insert(artifacts).values(
                        id=new_id("art"),
                        job_id=row["id"],
                        tenant_id=row["tenant_id"],
                        created_at=row["created_at"],
                        **artifact,
                    )
                )
            self._emit(conn, row, "job.status", {"status": QUEUED})

    def _by_idempotency_key(self, tenant_id: str, key: str) -> dict | None:
        with self.reader.connect() as conn:
            row = conn.execute(
                select(jobs).where(jobs.c.tenant_id == tenant_id, jobs.c.idempotency_key == key)
            ).first()
        return row._asdict() if row else None

    def get(self, job_id: str, tenant_id: str | None = None) -> dict | None:
        query = select(jobs).where(jobs.c.id == job_id)
        if tenant_id is not None:
            query = query.where(jobs.c.tenant_id == tenant_id)
        with self.reader.connect() as conn:
            row = conn.execute(query).first()
        return row._asdict() if row else None

    def list(
        self,
        tenant_id: str,
        *,
        states: Sequence[str] = (),
        model: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        labels: dict[str, str] | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[dict], str | None]:
        """Newest first; the cursor is the last id of the previous page."""
        query = select(jobs).where(jobs.c.tenant_id == tenant_id)
        for key, value in (labels or {}).items():
            query = query.where(jobs.c.id.in_(_labelled(tenant_id, key, value)))
        if states:
            query = query.where(jobs.c.state.in_(states))
        if model:
            query = query.where(jobs.c.model == model)
        if created_after is not None:
            query = query.where(jobs.c.created_at >= created_after)
        if created_before is not None:
            query = query.where(jobs.c.created_at < created_before)
        if cursor:
            query = query.where(jobs.c.id < decode_cursor(cursor))
        query = query.order_by(jobs.c.id.desc()).limit(limit + 1)
        with self.reader.connect() as conn:
            rows = [r._asdict() for r in conn.execute(query)]
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1]["id"]) if more and rows else None

    def label_values(self, tenant_id: str, key: str, having: dict[str, str]) -> list[str]:
        """The values label `key` takes among the tenant's jobs that have the labels `having`
        (a door's customer ids), sorted."""
        query = select(job_labels.c.value).where(
            job_labels.c.tenant_id == tenant_id, job_labels.c.key == key
        )
        for other, value in having.items():
            query = query.where(job_labels.c.job_id.in_(_labelled(tenant_id, other, value)))
        with self.reader.connect() as conn:
            return list(conn.execute(query.distinct().order_by(job_labels.c.value)).scalars())

    def request_cancel(self, job_id: str, tenant_id: str) -> dict | None:
        """A queued job is canceled at once; a running one is flagged for its dispatcher."""
        now = time.time()
        with self.engine.begin() as conn:
            row = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.tenant_id == tenant_id, jobs.c.state == QUEUED)
                .values(state=CANCELED, finished_at=now, updated_at=now, cancel_requested=True)
                .returning(*jobs.c)
            ).first()
            if row is not None:
                self._emit(conn, row._asdict(), "job.status", {"status": CANCELED})
            else:
                conn.execute(
                    update(jobs)
                    .where(
                        jobs.c.id == job_id, jobs.c.tenant_id == tenant_id, jobs.c.state == RUNNING
                    )
                    .values(cancel_requested=True, updated_at=now)
                )
        return self.get(job_id, tenant_id)

    def artifacts(self, job_id: str) -> list[dict]:
        with self.reader.connect() as conn:
            rows = conn.execute(
                select(artifacts).where(artifacts.c.job_id == job_id).order_by(artifacts.c.name)
            )
            return [r._asdict() for r in rows]

    # ---- events ----

    def events(
        self,
        *,
        job_id: str | None = None,
        tenant_id: str | None = None,
        after_id: int = 0,
        limit: int = 1000,
    ) -> list[dict]:
        """A job's or a tenant's events after the event id (its number) `after_id`, in order;
        with neither given (audits, tests), every tenant's in the order they were written."""
        order = job_events.c.seq if job_id or tenant_id else job_events.c.id
        query = _with_labels(select(job_events, jobs.c.labels)).where(order > after_id)
        if job_id is not None:
            query = query.where(job_events.c.job_id == job_id)
        if tenant_id is not None:
            query = query.where(job_events.c.tenant_id == tenant_id)
        with self.reader.connect() as conn:
            rows = conn.execute(query.order_by(order).limit(limit))
            return [_event(r) for r in rows]

    def events_since(self, after_row: int, also_rows: Iterable[int] = (), limit: int = 2000):
        """Events written after a row, plus some earlier rows that may have committed late (the
        tail follows the table by row, busque.jobs.event_tail)."""
        cond = job_events.c.id > after_row
        also = list(also_rows)
        if also:
            cond = or_(cond, job_events.c.id.in_(also))
        with self.reader.connect() as conn:
            rows = conn.execute(
                _with_labels(select(job_events, jobs.c.labels))
                .where(cond)
                .order_by(job_events.c.id)
                .limit(limit)
            )
            return [_event(r) for r in rows]

    def recent_gaps(self, window: int) -> tuple[int, list[int]]:
        """The newest event row, and the rows missing among the `window` below it."""
        with self.reader.connect() as conn:
            last = conn.execute(select(func.max(job_events.c.id))).scalar() or 0
            seen = set(
                conn.execute(
                    select(job_events.c.id).where(job_events.c.id > last - window)
                ).scalars()
            )
        return last, [i for i in range(max(1, last - window + 1), last) if i not in seen]

    def ping(self) -> None:
        """A round trip to the database (readiness checks)."""
        with self.reader.connect() as conn:
            conn.execute(select(1)).scalar_one()

    def last_event_id(self, tenant_id: str) -> int:
        """The number of the tenant's newest event (0 before its first)."""
        with self.reader.connect() as conn:
            return (
                conn.execute(
                    select(func.max(job_events.c.seq)).where(job_events.c.tenant_id == tenant_id)
                ).scalar()
                or 0
            )

    def _emit(self, conn: Connection, job: dict, type_: str, data: dict) -> int:
        now = time.time()
        event_id = conn.execute(
            insert(job_events)
            .values(
                job_id=job["id"],
                tenant_id=job["tenant_id"],
                type=type_,
                attempt=job.get("attempt", 0),
                data=data,
                created_at=now,
                seq=next_number(conn, job["tenant_id"]),
            )
            .returning(job_events.c.seq)
        ).scalar_one()
        hook = job.get("webhook")
        if _subscribed(hook, type_, data, self.default_webhook_events):
            event = {"id": event_id, "job_id": job["id"], "type": type_, "data": data}
            if hook.get("format"):  # a front door's own body, rendered at delivery
                event["format"] = hook["format"]
            conn.execute(
                insert(webhook_deliveries).values(
                    id=new_id("msg"),
                    job_id=job["id"],
                    tenant_id=job["tenant_id"],
                    event_id=event_id,
                    event_type=type_,
                    url=hook["url"],
                    secret=hook.get("secret") or self._tenant_secret(conn, job["tenant_id"]),
                    payload={**event, "created_at": now},
                    state="pending",
                    attempts=0,
                    next_attempt_at=now,
                    log=[],
                    created_at=now,
                )
            )
        return event_id

    def _tenant_secret(self, conn: Connection, tenant_id: str) -> str:
        return conn.execute(
            select(tenants.c.webhook_secret).where(tenants.c.id == tenant_id)
        ).scalar_one()

    # ---- the dispatcher's side ----

    def claim(self, owner: str, limit: int) -> list[dict]:
        """Atomically move up to `limit` due queued jobs to running under this owner's lease,
        the slots shared between tenants (busque.jobs.fair_share), each tenant's own jobs by
        priority, then age."""
        now = time.time()
        is_due = and_(jobs.c.state == QUEUED, jobs.c.run_after <= now)
        with self.reader.connect() as conn:  # most wakes find nothing: don't take a write lock
            queued = {
                tenant: (n, oldest)
                for tenant, n, oldest in conn.execute(
                    select(jobs.c.tenant_id, func.count(), func.min(jobs.c.id))
                    .where(is_due)
                    .group_by(jobs.c.tenant_id)
                )
            }
            if not queued:
                return []
            running = dict(
                conn.execute(
                    select(jobs.c.tenant_id, func.count())
                    .where(jobs.c.state == RUNNING, jobs.c.tenant_id.in_(list(queued)))
                    .group_by(jobs.c.tenant_id)
                ).all()
            )
            names = {}
            if self.settings.tenant_weights or self.quotas.tenants:
                names = self._tenant_names(conn, list(queued))
        by_name = self.settings.tenant_weights
        weights = {t: by_name[n] for t, n in names.items() if n in by_name}
        caps = {t: self.quotas.of(names.get(t)).running_jobs for t in queued}
        shares = allocate(queued, running, weights, limit, caps)
        with self.engine.begin() as conn:
            self._within_caps(conn, shares, caps)
            picks = [
                select(jobs.c.id)
                .where(is_due, jobs.c.tenant_id == tenant)
                .order_by(jobs.c.priority.desc(), jobs.c.id)
                .limit(n)
                for tenant, n in shares.items()
                if n > 0
            ]
            if self._skip_locked:
                picks = [pick.with_for_update(skip_locked=True) for pick in picks]
            # Pick (and on PostgreSQL lock) the ids first: as an `IN (subquery)` PostgreSQL may
            # rescan the LIMITed, SKIP LOCKED subquery once per row and so claim every due job.
            ids = [i for pick in picks for i in conn.execute(pick).scalars()]
            if not ids:
                return []
            rows = conn.execute(
                update(jobs)
                .where(jobs.c.id.in_(ids), jobs.c.state == QUEUED)
                .values(
                    state=RUNNING,
                    attempt=jobs.c.attempt + 1,
                    lease_owner=owner,
                    lease_expires_at=now + self.settings.lease_s,
                    started_at=func.coalesce(jobs.c.started_at, now),
                    updated_at=now,
                )
                .returning(*jobs.c)
            ).all()
            order = {job_id: n for n, job_id in enumerate(ids)}
            claimed = sorted((r._asdict() for r in rows), key=lambda j: order[j["id"]])
            for job in claimed:
                self._emit(conn, job, "job.status", {"status": RUNNING, "attempt": job["attempt"]})
        return claimed

    def _within_caps(self, conn: Connection, shares: dict[str, int], caps: dict[str, int]) -> None:
        """Trim the shares of tenants with a running cap to what they run now, counted inside
        the claiming transaction: another dispatcher may have claimed since the shares were
        computed. SQLite's writers take turns already; on PostgreSQL a lock per capped tenant
        makes the count and the claim one step."""
        capped = sorted(t for t, n in shares.items() if n and caps.get(t))
        if not capped:
            return
        if self._skip_locked:
            for tenant in capped:
                conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(tenant))))
        running = dict(
            conn.execute(
                select(jobs.c.tenant_id, func.count())
                .where(jobs.c.state == RUNNING, jobs.c.tenant_id.in_(capped))
                .group_by(jobs.c.tenant_id)
            ).all()
        )
        for tenant in capped:
            shares[tenant] = max(0, min(shares[tenant], caps[tenant] - running.get(tenant, 0)))

    def _tenant_names(self, conn, tenant_ids: list[str]) -> dict[str, str]:
        """tenant id -> name (weights and quotas are set by name)."""
        rows = conn.execute(
            select(tenants.c.id, tenants.c.name).where(tenants.c.id.in_(tenant_ids))
        )
        return dict(rows.all())

    def heartbeat(self, owner: str, attempts: dict[str, int]) -> set[str]:
        """Renew the leases of these (job id -> attempt); returns the ids asked to cancel."""
        if not attempts:
            return set()
        now = time.time()
        # Each lease is renewed only for the very attempt this owner runs (fenced like writes).
        this_attempt = or_(
            *(and_(jobs.c.id == i, jobs.c.attempt == a) for i, a in attempts.items())
        )
        mine = and_(this_attempt, jobs.c.lease_owner == owner, jobs.c.state == RUNNING)
        with self.engine.begin() as conn:
            conn.execute(
                update(jobs).where(mine).values(lease_expires_at=now + self.settings.lease_s)
            )
            rows = conn.execute(
                select(jobs.c.id).where(mine, jobs.c.cancel_requested.is_(True))
            ).all()
        return {r.id for r in rows}

    def reap_expired(self, limit: int = 100) -> list[tuple[str, str]]:
        """Jobs whose lease ran out (dead worker, hung model): retry, cancel or fail them."""
        now = time.time()
        query = (
            select(jobs).where(jobs.c.state == RUNNING, jobs.c.lease_expires_at < now).limit(limit)
        )
        if self._skip_locked:
            query = query.with_for_update(skip_locked=True)
        changed = []
        with self.engine.begin() as conn:
            for row in conn.execute(query).all():
                job = row._asdict()
                if job["cancel_requested"]:
                    state = self._finish(conn, job, CANCELED)
                elif job["attempt"] >= job["max_attempts"]:
                    message = (
                        f"attempt {job['attempt']} of {job['max_attempts']} stopped "
                        "heartbeating (timed out or its worker died)"
                    )
                    state = self._finish(conn, job, FAILED, error=("timeout", message))
                else:
                    state = self._requeue(conn, job, "timeout", "lease expired")
                if state:
                    changed.append((job["id"], state))
        return changed

    def release(self, owner: str) -> int:
        """Give this owner's running jobs back to the queue (a graceful shutdown); those asked
        to cancel are canceled instead. The attempt stays counted: lowering it again would let
        a late writer of that attempt pass the fence."""
        now = time.time()
        with self.engine.begin() as conn:
            owned = conn.execute(
                select(jobs).where(jobs.c.lease_owner == owner, jobs.c.state == RUNNING)
            ).all()
            for row in owned:
                job = row._asdict()
                if job["cancel_requested"]:
                    self._finish(conn, job, CANCELED)
                    continue
                self._back_to_queue(conn, job, now, {"released": True})
        return len(owned)

    def _fenced(self, conn: Connection, job_id: str, attempt: int, **values) -> dict | None:
        row = conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.attempt == attempt, jobs.c.state == RUNNING)
            .values(updated_at=time.time(), **values)
            .returning(*jobs.c)
        ).first()
        return row._asdict() if row else None

    def progress(self, job_id: str, attempt: int, percent: float, message: str | None) -> bool:
        percent = max(0.0, min(100.0, float(percent)))
        with self.engine.begin() as conn:
            job = self._fenced(conn, job_id, attempt, progress=percent)
            if job is None:
                return False
            data = {"progress": percent} | ({"message": message} if message else {})
            self._emit(conn, job, "job.progress", data)
        return True

    def output(self, job_id: str, attempt: int, chunks: list[Any], first_index: int) -> bool:
        with self.engine.begin() as conn:
            job = self._fenced(conn, job_id, attempt)
            if job is None:
                return False
            for offset, chunk in enumerate(chunks):
                self._emit(conn, job, "job.output", {"chunk": chunk, "index": first_index + offset})
        return True

    def add_artifact(self, job_id: str, attempt: int, info: dict) -> bool:
        with self.engine.begin() as conn:
            job = self._fenced(conn, job_id, attempt)
            if job is None:
                return False
            conn.execute(
                delete(artifacts).where(
                    artifacts.c.job_id == job_id, artifacts.c.name == info["name"]
                )
            )
            conn.execute(
                insert(artifacts).values(
                    id=new_id("art"),
                    job_id=job_id,
                    tenant_id=job["tenant_id"],
                    name=info["name"],
                    object_key=info["object_key"],
                    content_type=info.get("content_type"),
                    size=info["size"],
                    created_at=time.time(),
                )
            )
        return True

    def succeed(self, job_id: str, attempt: int, result: Any) -> bool:
        return self.succeed_many([(job_id, attempt, result)])[0]

    def succeed_many(self, results: list[tuple[str, int, Any]]) -> list[bool]:
        """Record several attempts' results in one transaction (a group commit); each write is
        fenced on its own attempt. Returns, per result, whether it landed."""
        with self.engine.begin() as conn:
            return [
                self._finish(conn, {"id": job_id, "attempt": attempt}, SUCCEEDED, result=result)
                is not None
                for job_id, attempt, result in results
            ]

    def cancel_attempt(self, job_id: str, attempt: int) -> bool:
        with self.engine.begin() as conn:
            job = self._fenced_row(conn, job_id, attempt)
            return job is not None and self._finish(conn, job, CANCELED) is not None

    def fail_attempt(
        self, job_id: str, attempt: int, code: str, message: str, retryable: bool
    ) -> str | None:
        """Record a failed attempt: requeue it with backoff, or fail the job for good.
        Returns the new state, or None if this attempt no longer owns the job."""
        with self.engine.begin() as conn:
            job = self._fenced_row(conn, job_id, attempt)
            if job is None:
                return None
            if job["cancel_requested"]:
                return self._finish(conn, job, CANCELED)
            if retryable and job["attempt"] < job["max_attempts"]:
                return self._requeue(conn, job, code, message)
            return self._finish(conn, job, FAILED, error=(code, message))

    def _fenced_row(self, conn: Connection, job_id: str, attempt: int) -> dict | None:
        query = select(jobs).where(
            jobs.c.id == job_id, jobs.c.attempt == attempt, jobs.c.state == RUNNING
        )
        if self._skip_locked:
            query = query.with_for_update()
        row = conn.execute(query).first()
        return row._asdict() if row else None

    def _requeue(self, conn: Connection, job: dict, code: str, message: str) -> str | None:
        delay = backoff(
            job["attempt"],
            self.settings.retry_backoff_s,
            self.settings.retry_backoff_max_s,
            from_zero=True,
        )
        status = {"retry_in_s": round(delay, 3), "error": {"code": code, "message": message}}
        return self._back_to_queue(
            conn, job, time.time() + delay, status, error_code=code, error_message=message
        )

    def _back_to_queue(
        self, conn: Connection, job: dict, run_after: float, status: dict, **values: Any
    ) -> str | None:
        """The fenced move of a running attempt back to queued, with its job.status event."""
        row = self._fenced(
            conn,
            job["id"],
            job["attempt"],
            state=QUEUED,
            lease_owner=None,
            lease_expires_at=None,
            run_after=run_after,
            **values,
        )
        if row is None:
            return None
        self._emit(conn, row, "job.status", {"status": QUEUED, **status})
        return QUEUED

    def _finish(
        self,
        conn: Connection,
        job: dict,
        state: str,
        *,
        result: Any = None,
        error: tuple[str, str] | None = None,
    ) -> str | None:
        values: dict[str, Any] = {
            "state": state,
            "finished_at": time.time(),
            "lease_owner": None,
            "lease_expires_at": None,
        }
        if state == SUCCEEDED:
            values |= {
                "result": result,
                "progress": 100.0,
                "error_code": None,
                "error_message": None,
            }
        if error:
            values |= {"error_code": error[0], "error_message": error[1]}
        if state == CANCELED:
            values |= {"error_code": "canceled", "error_message": "canceled on request"}
        row = self._fenced(conn, job["id"], job["attempt"], **values)
        if row is None:
            return None
        if state == SUCCEEDED:
            self._emit(conn, row, "job.result", {"result": result})
        status: dict[str, Any] = {"status": state}
        if row["error_code"] and state != SUCCEEDED:
            status["error"] = {"code": row["error_code"], "message": row["error_message"]}
        self._emit(conn, row, "job.status", status)
        return state

    # ---- metrics ----

    def counts_by_state(self) -> dict[str, int]:
        with self.reader.connect() as conn:
            rows = conn.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state))
            counts = dict.fromkeys(STATES, 0)
            counts.update({state: n for state, n in rows})
        return counts

    def durations(self, since: float) -> list[float]:
        """Run times (start to finish) of jobs that finished after `since`."""
        with self.reader.connect() as conn:
            rows = conn.execute(
                select(jobs.c.finished_at - jobs.c.started_at).where(
                    and_(jobs.c.finished_at > since, jobs.c.started_at.is_not(None))
                )
            )
            return [r[0] for r in rows]
