"""How a dispatcher's free slots are shared between tenants: priority orders a tenant's own jobs,
never another's. Each slot goes to the tenant with the fewest jobs running (those it already
runs, plus the slots given in this round) per unit of its weight (`jobs.tenant_weights`, by
tenant name; 1 by default), among the tenants with due jobs; ties go to the tenant whose oldest
due job is oldest. So a tenant that queued 90 jobs gets no more of the workers than one that
queued 1, and one with weight 2 gets twice the share of one with weight 1 while both wait.
A tenant with a cap (`quotas.running_jobs`) is given no slot past that many running jobs."""

from __future__ import annotations

import heapq


def allocate(
    queued: dict[str, tuple[int, str]],
    running: dict[str, int],
    weights: dict[str, float],
    slots: int,
    caps: dict[str, int] | None = None,
) -> dict[str, int]:
    """queued: tenant -> (due jobs, id of its oldest); running: tenant -> running jobs; caps:
    tenant -> the most jobs it may run (missing or 0: no cap); returns tenant -> how many of its
    jobs to start now (at most its due jobs)."""
    caps = caps or {}
    wanted = {
        t: min(n, caps[t] - running.get(t, 0)) if caps.get(t) else n for t, (n, _) in queued.items()
    }
    heap = [
        (running.get(t, 0) / weights.get(t, 1.0), oldest, t)
        for t, (_, oldest) in queued.items()
        if wanted[t] > 0
    ]
    heapq.heapify(heap)
    given: dict[str, int] = {}
    while slots > 0 and heap:
        _, oldest, tenant = heapq.heappop(heap)
        given[tenant] = given.get(tenant, 0) + 1
        slots -= 1
        if given[tenant] < wanted[tenant]:
            load = (running.get(tenant, 0) + given[tenant]) / weights.get(tenant, 1.0)
            heapq.heappush(heap, (load, oldest, tenant))
    return given
