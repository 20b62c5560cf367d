"""How many of something (event streams, request bodies) each tenant holds at once on one
Gateway replica.

A stream holds a Gateway slot for as long as it is open, a body for as long as it takes to
arrive: 1,100 streams of one tenant filled a Gateway (max_ongoing_requests 1000) and every other
tenant's requests timed out; so did 1,666 bodies trickled in a byte every 5 s. Past the limit a
new one is refused (429 + Retry-After; a WebSocket closes with 4429). The count is per replica:
with N Gateway replicas a tenant may hold up to N times it."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

from busque.api.errors import RETRY_AFTER_S, ApiError


class TenantSlots:
    def __init__(self, per_tenant: int, code: str, what: str):
        """per_tenant 0: no limit. `code` and `what` (e.g. "event streams open") name the 429."""
        self.per_tenant = per_tenant
        self.code = code
        self.what = what
        self.open: Counter[str] = Counter()

    def take(self, tenant_id: str, limit: int | None = None) -> None:
        """Take a slot, or raise the 429 that says why; `limit` is this tenant's own."""
        limit = self.per_tenant if limit is None else limit
        if limit and self.open[tenant_id] >= limit:
            raise ApiError(
                429,
                self.code,
                f"{limit} {self.what} already, the most allowed here: wait for one to end",
                {"limit": limit},
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        self.open[tenant_id] += 1

    def give_back(self, tenant_id: str) -> None:
        self.open[tenant_id] -= 1
        if self.open[tenant_id] <= 0:
            del self.open[tenant_id]

    async def held(self, tenant_id: str, stream: AsyncIterator[str]) -> AsyncIterator[str]:
        """`stream`, giving the tenant's slot back when it ends or the client goes."""
        try:
            async for chunk in stream:
                yield chunk
        finally:
            self.give_back(tenant_id)
