"""busque's OpenAPI document: FastAPI's, completed with what its middleware and gate answer.

Routes declare their own answers (`responses=` with busque.api.schemas); what every route of a
kind can answer is added here in one place: 401/403/429/503 on keyed routes (the tenant gate,
the scopes, the rate limits, an outage), 400/408/413/415/422 on routes with a body (bad JSON, a
slow or large body, a wrong Content-Type, the schema), and every 422 is busque's error envelope,
not FastAPI's `{"detail"}`. The document also lists the webhooks busque sends.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from busque.api.schemas.common import BODY_MODELS, WHY, ErrorEnvelope

REF = "#/components/schemas/{model}"
KEYED = (401, 403, 429, 503)
WITH_BODY = (400, 408, 413, 415, 422)


def operation_id(route: APIRoute) -> str:
    """The route's function name (`create_job`), a front door's prefixed by its door
    (`tcc_orchestrator_create_job`): short names for generated clients."""
    tag = str(route.tags[0]) if route.tags else ""
    if tag.startswith("door: "):
        return re.sub(r"[^a-z0-9]+", "_", tag.removeprefix("door: ").lower()) + "_" + route.name
    return route.name


def install(app: FastAPI, extra_models: tuple[type[BaseModel], ...] = ()) -> None:
    """Serve the completed document at /openapi.json (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app, extra_models)
        return app.openapi_schema

    app.openapi = openapi


def document(app: FastAPI, extra_models: tuple[type[BaseModel], ...] = ()) -> dict[str, Any]:
    spec = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        webhooks=app.webhooks.routes,
    )
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    _, defs = models_json_schema(
        [(m, "validation") for m in BODY_MODELS]
        + [(m, "serialization") for m in (ErrorEnvelope, *extra_models)],
        ref_template=REF,
    )
    schemas.update(defs.get("$defs", {}))
    seen: set[str] = set()
    for operations in spec["paths"].values():
        for operation in operations.values():
            _complete(operation)
            if operation["operationId"] in seen:
                raise ValueError(f"two operations are named {operation['operationId']!r}")
            seen.add(operation["operationId"])
    for operations in spec.get("webhooks", {}).values():
        for operation in operations.values():
            operation["responses"].pop("422", None)  # the receiver's answer, not busque's
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return spec


def _complete(operation: dict) -> None:
    responses = operation.setdefault("responses", {})
    envelope = {"application/json": {"schema": {"$ref": REF.format(model="ErrorEnvelope")}}}
    if any(s.startswith("4") and r.get("content") != envelope for s, r in _declared(responses)):
        # Errors in another shape (OpenAI's, for its clients): the route documents them all.
        responses.pop("422", None)
        return
    statuses: list[int] = []
    if operation.get("security"):
        statuses += KEYED
    if "requestBody" in operation:
        statuses += WITH_BODY
    if operation.get("parameters"):
        statuses.append(422)
    for status in statuses:
        responses.setdefault(str(status), {"description": WHY[status], "content": envelope})
    if "422" in responses:  # FastAPI's own 422 describes `{"detail"}`: busque answers the envelope
        responses["422"] = {"description": WHY[422], "content": envelope}


def _declared(responses: dict) -> list[tuple[str, dict]]:
    """The responses a route declared (not FastAPI's own 422 of `{"detail"}`)."""
    fastapi_422 = "HTTPValidationError" in str(responses.get("422", {}))
    return [(s, r) for s, r in responses.items() if not (s == "422" and fastapi_422)]
