"""Per-tenant token buckets in the database, so that every Gateway replica draws on the same one.

A bucket holds up to `burst` tokens and refills at `rate` per second. A replica takes tokens in
small leases (busque.api.rate_limit), not one write per request; a tenant may so exceed its rate
by at most one lease per replica.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from busque.db.engine import is_postgres
from busque.db.schema import rate_buckets


@dataclass(frozen=True)
class Lease:
    tokens: int  # how many were granted (0: none left)
    wait_s: float  # with none granted: until the next token


class RateBuckets:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._lock_rows = is_postgres(engine)  # SQLite writers lock the whole file (IMMEDIATE)

    def take(self, tenant_id: str, want: int, rate: float, burst: int) -> Lease:
        """Up to `want` tokens from the tenant's bucket (refilled for the time since it was last
        drawn on)."""
        try:
            return self._take(tenant_id, want, rate, burst)
        except IntegrityError:  # another replica made the tenant's bucket first: draw on it
            return self._take(tenant_id, want, rate, burst)

    def _take(self, tenant_id: str, want: int, rate: float, burst: int) -> Lease:
        now = time.time()
        query = select(rate_buckets.c.tokens, rate_buckets.c.refilled_at).where(
            rate_buckets.c.tenant_id == tenant_id
        )
        if self._lock_rows:
            query = query.with_for_update()
        with self.engine.begin() as conn:
            row = conn.execute(query).first()
            if row is None:
                tokens = float(burst)
            else:
                tokens = min(float(burst), row.tokens + rate * max(0.0, now - row.refilled_at))
            granted = max(0, min(want, int(tokens)))
            values = {"tokens": tokens - granted, "refilled_at": now}
            if row is None:
                conn.execute(insert(rate_buckets).values(tenant_id=tenant_id, **values))
            else:
                conn.execute(
                    update(rate_buckets).where(rate_buckets.c.tenant_id == tenant_id).values(values)
                )
        wait_s = 0.0 if granted else (1.0 - (tokens - granted)) / rate
        return Lease(granted, wait_s)
