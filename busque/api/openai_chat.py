"""OpenAI-compatible chat completions (`POST /v1/chat/completions`), streaming or not.

The same TextGenerator deployment and the same API keys as text-generation jobs (send the key as
`Authorization: Bearer`, as OpenAI clients do), so existing OpenAI clients work against busque.
These calls are synchronous; a text-generation job is the queued, resumable way.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from busque.api.auth import require
from busque.api.bodies import json_object
from busque.api.errors import ApiError, invalid
from busque.api.strict_json import StrictJsonRoute
from busque.auth.keys import Principal
from busque.models.base import ModelError
from busque.models.text.spec import Message

router = APIRouter(prefix="/v1", tags=["openai"], route_class=StrictJsonRoute)


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI clients send fields busque ignores

    model: str
    messages: list[Message] = Field(min_length=1, max_length=200)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0)
    stream: bool = False
    n: Literal[1] = 1


def _params(ctx, spec, body: ChatRequest) -> dict:
    stop = [body.stop] if isinstance(body.stop, str) else body.stop
    raw: dict[str, Any] = {
        "max_new_tokens": body.max_completion_tokens or body.max_tokens,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "stop": stop,
        "seed": body.seed,
    }
    try:
        return spec.params_schema.model_validate(
            {k: v for k, v in raw.items() if v is not None}
        ).model_dump()
    except ValidationError as exc:
        raise invalid(exc, "invalid_request", "parameters out of range") from None


@router.post("/chat/completions", summary="OpenAI-compatible chat completion (stream or not)")
async def chat_completions(request: Request, principal: Principal = Depends(require("jobs:write"))):
    ctx = request.app.state.ctx
    try:
        body = ChatRequest.model_validate(await json_object(request))
    except ValidationError as exc:
        raise invalid(exc, "invalid_request", "invalid chat completion request") from None
    spec = ctx.registry.get(body.model)
    if spec is None or spec.kind != "text-generation":
        available = [s.id for s in ctx.registry if s.kind == "text-generation"]
        raise ApiError(
            404, "model_not_found", f"no chat model {body.model!r}", {"available": available}
        )
    if ctx.text_generator is None or spec.unavailable(ctx.settings):
        raise ApiError(503, "model_unavailable", f"{body.model!r} is not available here")
    params = _params(ctx, spec, body)
    inputs = {"messages": [m.model_dump() for m in body.messages]}
    try:
        await asyncio.to_thread(spec.admit, inputs, principal.tenant_id, ctx.objects)
    except ModelError as exc:
        raise ApiError(422, exc.code, str(exc)) from None
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    stream = ctx.text_generator.options(stream=True).chat.remote(inputs, params)
    if body.stream:
        return StreamingResponse(
            _sse(stream, completion_id, created, body.model),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    result = None
    async for item in stream:
        result = item.get("result", result)
    usage = result["usage"]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": body.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result["content"]},
                "finish_reason": result["finish_reason"],
            }
        ],
        "usage": {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]},
    }


async def _sse(stream, completion_id: str, created: int, model: str):
    def chunk(delta: dict, finish_reason: str | None = None, **extra) -> str:
        body = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            **extra,
        }
        return f"data: {json.dumps(body)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    async for item in stream:
        if "delta" in item:
            yield chunk({"content": item["delta"]})
        else:
            result = item["result"]
            usage = result["usage"]
            total = usage["prompt_tokens"] + usage["completion_tokens"]
            yield chunk({}, result["finish_reason"], usage={**usage, "total_tokens": total})
    yield "data: [DONE]\n\n"
