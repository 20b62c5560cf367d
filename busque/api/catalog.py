"""The model catalog: what can run here, with defaults, schemas and resources."""

from fastapi import APIRouter, Depends, Request

from busque.api.auth import require
from busque.api.errors import not_found
from busque.api.schemas.catalog import ModelInfo, ModelList
from busque.api.schemas.common import errors
from busque.api.strict_json import StrictJsonRoute
from busque.auth.keys import Principal

router = APIRouter(prefix="/v1", tags=["models"], route_class=StrictJsonRoute)


@router.get("/models", summary="List the model catalog", responses={200: {"model": ModelList}})
async def list_models(request: Request, _: Principal = Depends(require("jobs:read"))):
    ctx = request.app.state.ctx
    return {"object": "list", "data": [spec.describe(ctx.settings) for spec in ctx.registry]}


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
    return spec.describe(ctx.settings)
