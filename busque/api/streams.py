"""How many event streams (SSE and WebSocket) each tenant holds open on one Gateway replica.

A stream holds a Gateway slot for as long as it is open: 1,100 streams of one tenant filled a
Gateway (max_ongoing_requests 1000) and every other tenant's requests timed out. Past
`events.max_streams_per_tenant` a new stream is refused (429 + Retry-After, or WebSocket close
4429). The count is per replica: with N Gateway replicas a tenant may hold up to N times it."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

from busque.api.errors import RETRY_AFTER_S, ApiError


class StreamSlots:
    def __init__(self, per_tenant: int):
        self.per_tenant = per_tenant
        self.open: Counter[str] = Counter()

    def take(self, tenant_id: str) -> None:
        """Take a slot, or raise the 429 that says why."""
        if self.open[tenant_id] >= self.per_tenant:
            raise ApiError(
                429,
                "too_many_streams",
                f"this tenant has {self.per_tenant} event streams open here: close one first",
                {"limit": self.per_tenant},
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
