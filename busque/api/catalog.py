"""The model catalog: what can run here, with defaults, schemas and resources.

`GET /v1/models` is also the path OpenAI clients read (`client.models.list()`), so one answer
serves both: busque's catalog entries (id, kind, backend, defaults, schemas, resources,
available) are a superset of OpenAI's model object. Each entry also carries OpenAI's fields,
`object: "model"`, `created` (when this server's catalog was built) and `owned_by: "busque"`,
plus `openai_endpoints`: the OpenAI-compatible routes that serve the model
(`/v1/chat/completions` for text generation, `/v1/embeddings` for text and image embeddings;
empty for busque's other job kinds, which run through `POST /v1/jobs`). The list is
`{"object": "list", "data": [...]}`, OpenAI's page shape, which busque already answered.
"""

import time

from fastapi import APIRouter, Depends, Request

from busque.api.auth import require
from busque.api.errors import not_found
from busque.api.schemas.catalog import ModelInfo, ModelList
from busque.api.schemas.common import errors
from busque.api.strict_json import StrictJsonRoute
from busque.auth.keys import Principal

router = APIRouter(prefix="/v1", tags=["models"], route_class=StrictJsonRoute)

OPENAI_ENDPOINTS = {
    "text-generation": ["/v1/chat/completions"],
    "text-embedding": ["/v1/embeddings"],
    "image-embedding": ["/v1/embeddings"],
}
_CREATED = int(time.time())  # when this process built its catalog


def describe(spec, settings) -> dict:
    return {
        **spec.describe(settings),
        "object": "model",
        "created": _CREATED,
        "owned_by": "busque",
        "openai_endpoints": OPENAI_ENDPOINTS.get(spec.kind, []),
    }


@router.get(
    "/models",
    summary="List the model catalog (also OpenAI's model list)",
    responses={200: {"model": ModelList}},
)
async def list_models(request: Request, _: Principal = Depends(require("jobs:read"))):
    ctx = request.app.state.ctx
    return {"object": "list", "data": [describe(spec, ctx.settings) for spec in ctx.registry]}


@router.get(
    "/models/{model_id}",
    summary="One model of the catalog",
    responses={200: {"model": ModelInfo}, **errors(404)},
)
async def get_model(model_id: str, request: Request, _: Principal = Depends(require("jobs:read"))):
    ctx = request.app.state.ctx
    spec = ctx.registry.get(model_id)
    if spec is None:
        raise not_found("model", model_id)
    return describe(spec, ctx.settings)
