"""Build the FastAPI application (the Gateway's ASGI app) around an ApiContext."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from busque.api import (
    catalog,
    demo,
    docs,
    duplicates,
    events,
    faces,
    ingest,
    jobs,
    media,
    objects,
    openai_chat,
    openai_embeddings,
    openapi,
    ops,
    search,
    sync,
    webapp,
    webhook_docs,
)
from busque.api.context import ApiContext
from busque.api.errors import install_error_handlers
from busque.api.limits import BodyLimitMiddleware
from busque.api.schemas.jobs import Event
from busque.api.tenant_gate import TenantGate

DESCRIPTION = """busque: jobs for image and media AI on Ray.

Authenticate with `X-API-Key: KEY` or `Authorization: Bearer KEY`. Errors come as
`{"error": {"code", "message", "details"}}`. Every model call is a job
(`queued -> running -> succeeded | failed | canceled`), followed by polling, `?wait=`,
server-sent events, the WebSocket at `/v1/ws`, webhooks or gRPC.
"""


def create_app(
    ctx: ApiContext, doors: Iterable[APIRouter] = (), keyless: tuple[str, ...] = ()
) -> FastAPI:
    """busque's API, and the front doors' routers (busque/doors/) beside it; `keyless`: the
    doors' paths whose body carries its own credentials."""
    app = FastAPI(
        title="busque",
        version="0.1.0",
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        generate_unique_id_function=openapi.operation_id,
    )
    app.state.ctx = ctx
    install_error_handlers(app)
    for module in (
        ops,
        jobs,
        events,
        objects,
        catalog,
        sync,
        ingest,
        media,
        duplicates,
        search,
        faces,
        openai_chat,
        openai_embeddings,
        demo,
        webapp,
    ):
        app.include_router(module.router)
    for door in doors:
        app.include_router(door)
    webapp.mount(app)
    docs.mount(app)  # Swagger UI and ReDoc with local assets
    webhook_docs.declare(app.webhooks)
    openapi.install(app, extra_models=(Event,))
    # Inside CORS, so that its refusals carry CORS headers too.
    app.add_middleware(
        TenantGate,
        authenticator=ctx.auth,
        quotas=ctx.settings.quotas,
        rates=ctx.rates,
        bodies=ctx.bodies,
        keyless=keyless,
    )
    if ctx.settings.serve.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=ctx.settings.serve.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["Location", "Idempotent-Replayed"],
        )
    serve = ctx.settings.serve
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=serve.max_body_bytes, timeout_s=serve.body_timeout_s
    )
    return app
