"""OpenAI-compatible embeddings (`POST /v1/embeddings`) for text and for images, so vector tools
built on the OpenAI client work against busque.

Models (their catalog ids; `GET /v1/models` lists them with `openai_endpoints`):
- `all-minilm-l6-v2`: text, 384-d (the TextEmbedder deployment). Texts longer than 256 word
  pieces are truncated, as sentence-transformers does; `usage` counts the tokens embedded.
- the image embedder, `efficientnet-lite0` by default (1280-d; `clip` when configured): the
  Embedder deployment that ingest and search use, so these vectors are the ones in the index.
  Each input string is an image as a data URL (`data:image/jpeg;base64,...`) or bare base64;
  `usage` is 0 tokens.

`input` is a string or an array of strings (token arrays are refused: send text), none empty;
`encoding_format` `float` (default) or `base64` (little-endian float32, as OpenAI encodes);
`dimensions` is accepted only as the model's own dimension (no model here shortens its vectors);
`user` is accepted and not used. Vectors are L2-normalised. Errors are OpenAI-shaped
(busque.api.openai_errors).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from busque.api.auth import require
from busque.api.bodies import json_object
from busque.api.errors import ApiError
from busque.api.openai_errors import (
    ERROR_RESPONSES,
    OpenAIRoute,
    refuse,
    validation_error,
)
from busque.api.schemas.common import json_body
from busque.auth.keys import Principal
from busque.models.text_embedding.spec import MAX_TEXT_CHARS, MAX_TEXTS

router = APIRouter(prefix="/v1", tags=["openai"], route_class=OpenAIRoute)

MAX_IMAGES = 64  # images per request (each is one Embedder call)
DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^;,]*)*?);base64,", re.I)


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="all-minilm-l6-v2 (text) or the image embedder's id")
    input: str | list[str] = Field(
        description="a text or image, or an array of them (images: data URLs or bare base64); "
        f"at most {MAX_TEXTS} texts or {MAX_IMAGES} images, none empty"
    )
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, description="only the model's own dimension")
    user: str | None = Field(None, description="accepted and not used")


class OpenAIEmbedding(BaseModel):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str = Field(
        description="floats, or with encoding_format base64 little-endian float32 in base64"
    )


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"]
    data: list[OpenAIEmbedding]
    model: str
    usage: EmbeddingUsage


def _request(raw: dict) -> tuple[EmbeddingsRequest, list[str]]:
    value = raw.get("input")
    if (
        isinstance(value, list)
        and value
        and all(
            isinstance(v, int) or (isinstance(v, list) and all(isinstance(t, int) for t in v))
            for v in value
        )
    ):
        raise refuse("input", "token arrays are not supported: send the text", "unsupported_value")
    try:
        body = EmbeddingsRequest.model_validate(raw, strict=True)
    except ValidationError as exc:
        raise validation_error(exc) from None
    inputs = [body.input] if isinstance(body.input, str) else body.input
    if not inputs:
        raise refuse("input", "input is empty: send a string or a non-empty array of strings")
    for i, text in enumerate(inputs):
        if not text:
            where = "input" if isinstance(body.input, str) else f"input[{i}]"
            raise refuse(where, f"'{where}' is an empty string")
    return body, inputs


@router.post(
    "/embeddings",
    summary="OpenAI-compatible embeddings of texts or images",
    openapi_extra=json_body(EmbeddingsRequest),
    responses={200: {"model": EmbeddingsResponse}, **ERROR_RESPONSES},
    response_model=None,
)
async def embeddings(request: Request, _: Principal = Depends(require("jobs:write"))):
    ctx = request.app.state.ctx
    raw = await json_object(request)
    body, inputs = _request(raw)
    spec = ctx.registry.get(body.model)
    if spec is None or spec.kind not in ("text-embedding", "image-embedding"):
        available = [s.id for s in ctx.registry if s.kind.endswith("-embedding")]
        raise refuse(
            "model",
            f"no embedding model {body.model!r}; these are: {', '.join(available)}",
            "model_not_found",
            404,
        )
    reason = spec.unavailable(ctx.settings)
    if spec.kind == "text-embedding":
        if reason or ctx.text_embedder is None:
            raise ApiError(503, "model_unavailable", reason or f"{spec.id!r} is not deployed")
        vectors, tokens = await _texts(ctx, inputs)
    else:
        if reason:
            raise ApiError(503, "model_unavailable", reason)
        vectors, tokens = await _images(ctx, inputs, isinstance(body.input, str))
    dim = vectors.shape[1]
    if body.dimensions is not None and body.dimensions != dim:
        raise refuse(
            "dimensions",
            f"{spec.id!r} embeds in {dim} dimensions and cannot shorten its vectors",
            "unsupported_value",
        )
    data = [
        {"object": "embedding", "index": i, "embedding": _encoded(v, body.encoding_format)}
        for i, v in enumerate(vectors)
    ]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    # A JSONResponse: FastAPI would walk thousands of floats through jsonable_encoder.
    return JSONResponse({"object": "list", "data": data, "model": spec.id, "usage": usage})


def _encoded(vector: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return np.asarray(vector, dtype=np.float32).tolist()


async def _texts(ctx, texts: list[str]) -> tuple[np.ndarray, int]:
    if len(texts) > MAX_TEXTS:
        raise refuse("input", f"at most {MAX_TEXTS} texts per request")
    for i, text in enumerate(texts):
        if len(text) > MAX_TEXT_CHARS:
            raise refuse(f"input[{i}]", f"texts are limited to {MAX_TEXT_CHARS} characters")
    out = await ctx.text_embedder.embed.remote(texts)
    return np.asarray(out["vectors"], dtype=np.float32), int(sum(out["tokens"]))


def decode_image(value: str, where: str) -> bytes:
    """A data URL (`data:image/png;base64,...`) or bare base64 -> the encoded image's bytes."""
    text = value.strip()
    if text[:5].lower() == "data:":
        match = DATA_URL.match(text)
        if match is None:
            raise refuse(where, f"'{where}' is a data URL but not a base64 one", "invalid_image")
        media_type = (match.group("type") or "").lower()
        if media_type and not media_type.startswith("image/"):
            raise refuse(where, f"'{where}' is {media_type}, not an image", "invalid_image")
        text = text[match.end() :]
    try:
        data = base64.b64decode(re.sub(r"\s+", "", text), validate=True)
    except (binascii.Error, ValueError):
        raise refuse(
            where,
            f"'{where}' is not an image as base64 or a data: URL (this model embeds images)",
            "invalid_image",
        ) from None
    if not data:
        raise refuse(where, f"'{where}' is empty", "invalid_image")
    return data


async def _images(ctx, values: list[str], single: bool) -> tuple[np.ndarray, int]:
    if len(values) > MAX_IMAGES:
        raise refuse("input", f"at most {MAX_IMAGES} images per request")
    where = ["input" if single else f"input[{i}]" for i in range(len(values))]
    images = [decode_image(value, where[i]) for i, value in enumerate(values)]
    answers: list[dict[str, Any]] = await asyncio.gather(
        *(ctx.embedder.embed.remote(data, False) for data in images)
    )
    for i, answer in enumerate(answers):
        if "error" in answer:
            error = answer["error"]
            status = 413 if error["status"] == 413 else 400
            raise refuse(where[i], f"'{where[i]}': {error['message']}", error["code"], status)
    return np.stack([np.asarray(a["vector"], dtype=np.float32) for a in answers]), 0
