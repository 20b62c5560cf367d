"""The image embedder's catalog entry: the model `POST /v1/embeddings` serves for images (base64
input), the one ingest and search embed with. It runs in the Embedder deployment only (no job
kind of its own: ingest jobs embed)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from busque.models.embedding.efficientnet import unavailable_reason as efficientnet_missing
from busque.models.registry import ModelRegistry, ModelSpec, served_by_its_deployment


class ImageEmbeddingInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    images: list[str] = Field(min_length=1, description="base64 images or data: URLs")


def model_id(settings) -> str:
    """The catalog id of the configured image embedder: its backend's name."""
    return settings.embedder.backend


def unavailable_reason(settings) -> str | None:
    if settings.embedder.backend == "clip":
        return None if settings.embedder.model_path else "set embedder.model_path for clip"
    return efficientnet_missing()


def register(registry: ModelRegistry, settings) -> None:
    registry.register(
        ModelSpec(
            id=model_id(settings),
            kind="image-embedding",
            backend=settings.embedder.backend,
            factory=served_by_its_deployment,
            input_schema=ImageEmbeddingInput,
            deployment="embedder",
            description="Image embeddings (L2-normalised), the vectors ingest and search use; "
            "POST /v1/embeddings with base64 images or data: URLs.",
            public=False,
            unavailable=unavailable_reason,
        )
    )
