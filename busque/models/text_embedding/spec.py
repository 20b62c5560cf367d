"""The text-embedding model's catalog entry: a job kind (`POST /v1/jobs`) and the model that
`POST /v1/embeddings` serves, both in the TextEmbedder deployment (`textembed`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from busque.models.registry import ModelRegistry, ModelSpec
from busque.models.text_embedding.minilm import MODEL_ID, SentenceEmbedder, unavailable_reason

MAX_TEXTS = 2048  # texts per request, as OpenAI's embeddings endpoint allows
MAX_TEXT_CHARS = 100_000  # longer texts would be truncated to 256 word pieces anyway


class TextEmbeddingInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]] = Field(
        min_length=1, max_length=MAX_TEXTS
    )


def build(runtime) -> SentenceEmbedder:
    cfg = runtime.settings.text_embedding
    return SentenceEmbedder(model_dir=cfg.model_dir, device=cfg.device, batch_size=cfg.batch_size)


def register(registry: ModelRegistry, settings) -> None:
    registry.register(
        ModelSpec(
            id=MODEL_ID,
            kind="text-embedding",
            backend="transformers",
            factory=build,
            input_schema=TextEmbeddingInput,
            deployment="textembed",
            description="Sentence embeddings (384-d, L2-normalised; texts truncated to 256 word "
            "pieces, as sentence-transformers does); POST /v1/embeddings serves them too.",
            timeout_s=120,
            unavailable=lambda s: unavailable_reason(s.text_embedding.model_dir),
        )
    )
