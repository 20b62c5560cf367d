"""Operations: liveness, readiness, Prometheus metrics, and who-am-I."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from busque.api.auth import require
from busque.api.errors import ApiError
from busque.api.schemas.common import errors
from busque.api.schemas.ops import Health, Me, Readiness
from busque.api.strict_json import StrictJsonRoute
from busque.auth.keys import Principal
from busque.cluster import refuse_embedded_on_cluster

logger = logging.getLogger("busque.api")

router = APIRouter(tags=["operations"], route_class=StrictJsonRoute)


@router.get("/healthz", summary="The gateway process is alive", responses={200: {"model": Health}})
async def healthz():
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Database, object store, dispatcher and every deployment are up",
    responses={200: {"model": Readiness}, 503: {"model": Readiness, "description": "Not ready"}},
)
async def readyz(request: Request):
    ctx = request.app.state.ctx
    checks = {}

    async def check(name, probe):
        started = time.perf_counter()
        try:
            await asyncio.wait_for(probe(), timeout=5)
            checks[name] = {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}
        except Exception as exc:  # the message may name internal hosts: only in the log
            logger.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
            checks[name] = {"ok": False, "error": type(exc).__name__}
            if getattr(exc, "waiting", None) is not None:  # deployment names, not hosts
                checks[name]["waiting"] = exc.waiting

    await check("database", lambda: asyncio.to_thread(ctx.jobs.ping))
    await check("object_store", lambda: asyncio.to_thread(ctx.objects.ping))
    await check("dispatcher", ctx.dispatcher_status)
    await check("cluster", lambda: asyncio.to_thread(refuse_embedded_on_cluster, ctx.settings))
    if ctx.application_running is not None:  # no deployment still coming up
        await check("deployments", ctx.application_running)
    ready = all(c["ok"] for c in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks}, 200 if ready else 503
    )


@router.get(
    "/metrics",
    summary="Jobs by state and queue depth, read from the database",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **errors(401, 503),
    },
)
async def metrics(request: Request):
    """Gauges of the job table as it is now. The cumulative busque metrics (jobs finished, run
    and queue-wait histograms, tokens, batches, webhooks, index sizes) are recorded by the
    replicas that do the work and exported on Ray's metrics port as `ray_busque_*`
    (busque/serve/metrics.py). With `serve.metrics_token` set, only for
    `Authorization: Bearer <token>` (Prometheus: `authorization: {credentials: ...}`)."""
    ctx = request.app.state.ctx
    token = ctx.settings.serve.metrics_token
    sent = request.headers.get("authorization", "")
    if token and not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
        raise ApiError(
            401, "unauthorized", "/metrics wants Authorization: Bearer <serve.metrics_token>"
        )
    counts = await asyncio.to_thread(ctx.jobs.counts_by_state)
    registry = CollectorRegistry()
    by_state = Gauge("busque_jobs", "Jobs by state", ["state"], registry=registry)
    for state, n in counts.items():
        by_state.labels(state=state).set(n)
    Gauge("busque_queue_depth", "Jobs waiting to run", registry=registry).set(counts["queued"])
    Gauge("busque_jobs_running", "Jobs running now", registry=registry).set(counts["running"])
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/v1/me",
    summary="The calling key's tenant, scopes and webhook signing secret",
    responses={200: {"model": Me}},
)
async def me(request: Request, principal: Principal = Depends(require("jobs:read"))):
    """`webhook_secret` only for keys that may create jobs (jobs:write): with it a read-only
    key could forge the tenant's webhooks. null otherwise."""
    tenant = await asyncio.to_thread(request.app.state.ctx.keys.tenant, principal.tenant_id)
    return {
        "tenant_id": principal.tenant_id,
        "tenant": tenant["name"],
        "key_id": principal.key_id,
        "scopes": sorted(principal.scopes),
        "webhook_secret": tenant["webhook_secret"] if principal.allows("jobs:write") else None,
    }
