"""A tenant's API requests per second (`quotas.requests_per_s`, `quotas.burst`), held across
Gateway replicas: each replica takes tokens from the tenant's bucket in the database
(busque.auth.rate_buckets) a lease at a time, about a tenth of a second's worth, so a tenant at
full rate costs each replica some ten small writes a second, not one per request."""

from __future__ import annotations

import asyncio
import math
import time

from busque.api.errors import ApiError
from busque.auth.rate_buckets import RateBuckets
from busque.config import QuotaSettings


class RateLimiter:
    def __init__(self, buckets: RateBuckets):
        self.buckets = buckets
        self._held: dict[str, int] = {}
        self._refused_until: dict[str, float] = {}  # no bucket reads while surely empty
        self._locks: dict[str, asyncio.Lock] = {}

    async def admit(self, tenant_id: str, quota: QuotaSettings) -> None:
        """Count one request of this tenant, or raise the 429 that says when to come back."""
        if quota.requests_per_s <= 0 or self._take_held(tenant_id):
            return
        self._refuse_if_empty(tenant_id, quota)
        async with self._locks.setdefault(tenant_id, asyncio.Lock()):
            if self._take_held(tenant_id):  # another request leased while this one waited
                return
            self._refuse_if_empty(tenant_id, quota)
            rate, burst = quota.requests_per_s, quota.burst
            lease = await asyncio.to_thread(
                self.buckets.take, tenant_id, max(1, min(burst, math.ceil(rate / 10))), rate, burst
            )
            if lease.tokens == 0:
                self._refused_until[tenant_id] = time.monotonic() + lease.wait_s
                self._refuse_if_empty(tenant_id, quota)
            self._held[tenant_id] = lease.tokens - 1

    def _take_held(self, tenant_id: str) -> bool:
        if self._held.get(tenant_id, 0) > 0:
            self._held[tenant_id] -= 1
            return True
        return False

    def _refuse_if_empty(self, tenant_id: str, quota: QuotaSettings) -> None:
        wait_s = self._refused_until.get(tenant_id, 0.0) - time.monotonic()
        if wait_s > 0:
            rate, burst = quota.requests_per_s, quota.burst
            raise ApiError(
                429,
                "rate_limited",
                f"this tenant may send {rate:g} requests a second (bursts of {burst})",
                {"requests_per_s": rate, "burst": burst},
                headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
            )
