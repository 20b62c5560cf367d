"""OpenAI-compatible chat completions (`POST /v1/chat/completions`), streaming or not.

The same TextGenerator deployment and the same API keys as text-generation jobs (send the key as
`Authorization: Bearer`, as OpenAI clients do), so existing OpenAI clients work against busque.
These calls are synchronous; a text-generation job is the queued, resumable way.

What OpenAI clients send is taken as OpenAI does: content as a string or an array of text parts
(joined with newlines; image, audio and file parts are refused, the model reads text only), the
`developer` role (as `system`), `stream_options.include_usage` (a last chunk with no choices and
the usage; chunks carry no usage without it). Parameters busque does not implement (tools,
response_format other than text, logprobs, n > 1, penalties, ...) are refused with a 400 naming
them, never ignored, and so is any field OpenAI does not define. An error after a stream has
started ends it with an OpenAI error event (`data: {"error": {...}}`), which the `openai` client
raises as `APIError`. Every error is OpenAI-shaped (busque.api.openai_errors).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from busque.api.auth import require
from busque.api.bodies import json_object
from busque.api.errors import ApiError
from busque.api.openai_errors import (
    ERROR_RESPONSES,
    OpenAIRoute,
    error_body,
    refuse,
    validation_error,
)
from busque.api.schemas.common import json_body
from busque.auth.keys import Principal
from busque.models.base import ModelError
from busque.models.text.spec import TextGenInput

logger = logging.getLogger("busque.api")

router = APIRouter(prefix="/v1", tags=["openai"], route_class=OpenAIRoute)

# Parameters busque does not implement, with the values that ask for nothing (accepted: clients
# such as LangChain send them at their defaults); any other value is refused, naming the field.
NEUTRAL: dict[str, tuple] = {
    "tools": (None, []),
    "tool_choice": (None, "none"),
    "parallel_tool_calls": (None,),
    "functions": (None, []),
    "function_call": (None, "none"),
    "response_format": (None, {"type": "text"}),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "frequency_penalty": (None, 0),
    "presence_penalty": (None, 0),
    "logit_bias": (None, {}),
    "audio": (None,),
    "modalities": (None, ["text"]),
    "prediction": (None,),
    "reasoning_effort": (None,),
    "web_search_options": (None,),
}


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str = Field(description='"text"; image, audio and file parts are refused (text-only)')
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["developer", "system", "user", "assistant"] = Field(
        description="`developer` is taken as `system`; tool messages are refused (no tools)"
    )
    content: str | list[ContentPart] = Field(description="a string or an array of text parts")
    name: str | None = Field(None, description="accepted; the chat template does not use it")


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_usage: bool = False


def _unsupported(name: str, accepted: tuple) -> Any:
    shown = ", ".join(json.dumps(value) for value in accepted)
    return Field(None, description=f"not supported: refused unless {shown}")


class ChatRequest(BaseModel):
    """OpenAI's chat completion request; a field it does not define is refused."""

    model_config = ConfigDict(extra="forbid")

    model: str
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(None, ge=1, description="only 1 (busque returns one choice)")
    user: str | None = Field(None, description="accepted and not used")
    store: bool | None = Field(None, description="accepted; busque stores no completions")
    metadata: dict[str, str] | None = Field(None, description="accepted and not used")
    tools: Any = _unsupported("tools", NEUTRAL["tools"])
    tool_choice: Any = _unsupported("tool_choice", NEUTRAL["tool_choice"])
    parallel_tool_calls: Any = _unsupported("parallel_tool_calls", NEUTRAL["parallel_tool_calls"])
    functions: Any = _unsupported("functions", NEUTRAL["functions"])
    function_call: Any = _unsupported("function_call", NEUTRAL["function_call"])
    response_format: Any = _unsupported("response_format", NEUTRAL["response_format"])
    logprobs: Any = _unsupported("logprobs", NEUTRAL["logprobs"])
    top_logprobs: Any = _unsupported("top_logprobs", NEUTRAL["top_logprobs"])
    frequency_penalty: Any = _unsupported("frequency_penalty", NEUTRAL["frequency_penalty"])
    presence_penalty: Any = _unsupported("presence_penalty", NEUTRAL["presence_penalty"])
    logit_bias: Any = _unsupported("logit_bias", NEUTRAL["logit_bias"])
    audio: Any = _unsupported("audio", NEUTRAL["audio"])
    modalities: Any = _unsupported("modalities", NEUTRAL["modalities"])
    prediction: Any = _unsupported("prediction", NEUTRAL["prediction"])
    reasoning_effort: Any = _unsupported("reasoning_effort", NEUTRAL["reasoning_effort"])
    web_search_options: Any = _unsupported("web_search_options", NEUTRAL["web_search_options"])


# ---- the answers, as OpenAI defines them (for the OpenAPI document) ----


class ChatUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatAssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str


class ChatChoice(BaseModel):
    index: int
    message: ChatAssistantMessage
    finish_reason: Literal["stop", "length"]


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: ChatUsage


STREAM_DESCRIPTION = """With `"stream": true`: server-sent events, each `data: ` line a JSON
`chat.completion.chunk` (`{id, object, created, model, choices: [{index, delta: {role?, content?},
finish_reason}]}`; with `stream_options.include_usage` every chunk also has `usage: null` and a
last chunk has `choices: []` and the usage), then `data: [DONE]`. An error after the stream has
started is a last `data: {"error": {message, type, param, code}}` line, without `[DONE]`."""

CHAT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": ChatCompletion,
        "description": "The completion, or with `stream: true` its chunks as server-sent events",
        "content": {
            "text/event-stream": {
                "schema": {"type": "string", "description": STREAM_DESCRIPTION},
            }
        },
    },
    **ERROR_RESPONSES,
}


def _refuse_unsupported(raw: dict) -> None:
    for name, accepted in NEUTRAL.items():
        if name in raw and raw[name] not in accepted:
            raise refuse(
                name, f"busque does not support '{name}' on this model", "unsupported_parameter"
            )
    if raw.get("n") is not None and raw["n"] != 1:
        raise refuse("n", "busque returns one choice: n must be 1", "unsupported_value")


def _messages(body: ChatRequest) -> list[dict]:
    """OpenAI's messages as the text model takes them: `developer` as `system`, text parts
    joined with newlines."""
    out = []
    for i, message in enumerate(body.messages):
        content = message.content
        if isinstance(content, list):
            texts = []
            for j, part in enumerate(content):
                where = f"messages[{i}].content[{j}]"
                if part.type != "text":
                    raise refuse(
                        f"{where}.type",
                        f"{body.model!r} reads text only: content parts of type "
                        f"{part.type!r} are not supported",
                        "unsupported_content",
                    )
                if part.text is None:
                    raise refuse(f"{where}.text", "a text part needs its `text`")
                texts.append(part.text)
            content = "\n".join(texts)
        role = "system" if message.role == "developer" else message.role
        out.append({"role": role, "content": content})
    try:  # the text model's own rules (e.g. no empty message)
        TextGenInput.model_validate({"messages": out})
    except ValidationError as exc:
        raise validation_error(exc) from None
    return out


def _params(spec, body: ChatRequest) -> dict:
    stop = [body.stop] if isinstance(body.stop, str) else body.stop
    raw: dict[str, Any] = {
        "max_new_tokens": body.max_completion_tokens or body.max_tokens,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "stop": stop,
        "seed": body.seed,
    }
    names = {
        "max_new_tokens": "max_completion_tokens" if body.max_completion_tokens else "max_tokens"
    }
    try:
        return spec.params_schema.model_validate(
            {k: v for k, v in raw.items() if v is not None}
        ).model_dump()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first.get("loc") else None
        param = names.get(name, name)
        raise refuse(param, f"Invalid value for '{param}': {first['msg']}") from None


@router.post(
    "/chat/completions",
    summary="OpenAI-compatible chat completion (stream or not)",
    openapi_extra=json_body(ChatRequest),
    responses=CHAT_RESPONSES,
    response_model=None,
)
async def chat_completions(request: Request, principal: Principal = Depends(require("jobs:write"))):
    ctx = request.app.state.ctx
    raw = await json_object(request)
    _refuse_unsupported(raw)
    try:
        body = ChatRequest.model_validate(raw, strict=True)
    except ValidationError as exc:
        raise validation_error(exc) from None
    if body.stream_options is not None and not body.stream:
        raise refuse("stream_options", "stream_options is only allowed when stream is true")
    spec = ctx.registry.get(body.model)
    if spec is None or spec.kind != "text-generation":
        raise refuse("model", f"no chat model {body.model!r}", "model_not_found", 404)
    if ctx.text_generator is None or spec.unavailable(ctx.settings):
        raise ApiError(503, "model_unavailable", f"{body.model!r} is not available here")
    inputs = {"messages": _messages(body)}
    params = _params(spec, body)
    try:
        await asyncio.to_thread(spec.admit, inputs, principal.tenant_id, ctx.objects)
    except ModelError as exc:
        raise refuse("messages", str(exc), exc.code) from None
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    stream = ctx.text_generator.options(stream=True).chat.remote(inputs, params)
    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        return StreamingResponse(
            _sse(stream, completion_id, created, body.model, include_usage),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    result = None
    async for item in stream:
        result = item.get("result", result)
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
        "usage": _usage(result),
    }


def _usage(result: dict) -> dict:
    usage = result["usage"]
    return {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}


def _data(body: dict) -> str:
    return f"data: {json.dumps(body)}\n\n"


async def _sse(stream, completion_id: str, created: int, model: str, include_usage: bool):
    head = {"id": completion_id, "object": "chat.completion.chunk", "created": created}
    head["model"] = model

    def chunk(delta: dict, finish_reason: str | None = None) -> str:
        body = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
        if include_usage:
            body["usage"] = None
        return _data(body)

    yield chunk({"role": "assistant", "content": ""})
    try:
        async for item in stream:
            if "delta" in item:
                yield chunk({"content": item["delta"]})
            else:
                result = item["result"]
                yield chunk({}, result["finish_reason"])
                if include_usage:
                    yield _data({**head, "choices": [], "usage": _usage(result)})
    except Exception as exc:  # the generator failed after the 200 went out: say so, then stop
        logger.warning("chat stream %s failed: %s: %s", completion_id, type(exc).__name__, exc)
        message = f"the text generation failed mid-stream ({type(exc).__name__}); retry"
        yield _data(error_body(500, "generation_failed", message))
        return
    yield "data: [DONE]\n\n"
