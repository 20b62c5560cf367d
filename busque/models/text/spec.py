"""The text model's catalog entry: its input and parameters (limits from settings) and the
admission check that refuses prompts over the token limit before a job is queued."""

from __future__ import annotations

import threading
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from busque.models.base import ModelError
from busque.models.registry import ModelRegistry, ModelSpec
from busque.models.text.generator import TextGenerator
from busque.models.text.weights import model_dir, tokenizer_source, unavailable_reason


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str = Field(min_length=1, max_length=100_000)


class TextGenInput(BaseModel):
    """A chat (`messages`) or a single user `prompt`."""

    model_config = ConfigDict(extra="forbid")

    messages: list[Message] | None = Field(None, min_length=1, max_length=200)
    prompt: str | None = Field(None, min_length=1, max_length=100_000)

    @model_validator(mode="after")
    def _one_of(self) -> TextGenInput:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give exactly one of messages or prompt")
        if self.prompt is not None and not self.prompt.strip():
            raise ValueError("the prompt is empty")
        return self


def params_schema(settings) -> type[BaseModel]:
    cfg = settings.text
    return create_model(
        "TextGenParams",
        __config__=ConfigDict(extra="forbid"),  # a misspelt parameter is an error
        max_new_tokens=(int, Field(cfg.max_new_tokens, ge=1, le=cfg.max_new_tokens_limit)),
        temperature=(float, Field(0.7, ge=0, le=2, description="0: greedy")),
        top_p=(float, Field(0.95, gt=0, le=1)),
        stop=(
            list[Annotated[str, Field(min_length=1, max_length=200)]],
            Field(default_factory=list, max_length=4),
        ),
        seed=(int | None, Field(None, ge=0, le=2**63 - 1)),
    )


_tokenizers: dict[tuple, object] = {}
_lock = threading.Lock()


def _tokenizer(settings):
    source, options = tokenizer_source(settings)
    key = (source, tuple(sorted(options.items())))
    with _lock:
        if key not in _tokenizers:
            from transformers import AutoTokenizer

            _tokenizers[key] = AutoTokenizer.from_pretrained(source, **options)
        return _tokenizers[key]


def prompt_tokens(settings, inputs: dict) -> int:
    messages = inputs.get("messages") or [{"role": "user", "content": inputs["prompt"]}]
    ids = _tokenizer(settings).apply_chat_template(messages, add_generation_prompt=True)
    return len(ids["input_ids"] if hasattr(ids, "keys") else ids)


def admit_for(settings):
    limit = settings.text.max_prompt_tokens

    def admit(inputs: dict, tenant_id: str, objects) -> None:
        text = "".join(m["content"] for m in inputs.get("messages") or []) + (
            inputs.get("prompt") or ""
        )
        if len(text.encode()) < limit // 2:  # a token is at least one byte: surely short enough
            return
        count = prompt_tokens(settings, inputs)
        if count > limit:
            raise ModelError(
                "prompt_too_long", f"the prompt is {count} tokens; the limit is {limit}"
            )

    return admit


def build(settings) -> TextGenerator:
    """The text model of these settings (weights load on first use)."""
    return TextGenerator(
        model_dir=lambda: model_dir(settings),
        device=settings.text.device,
        dtype=settings.text.dtype,
        model_id=settings.text.model,
    )


def register(registry: ModelRegistry, settings) -> None:
    registry.register(
        ModelSpec(
            id=settings.text.model,
            kind="text-generation",
            backend="transformers",
            factory=lambda runtime: build(runtime.settings),
            input_schema=TextGenInput,
            params_schema=params_schema(settings),
            deployment="textgen",
            description="Chat completion with a causal LM; tokens stream as job.output events.",
            timeout_s=600,
            unavailable=unavailable_reason,
            admit=admit_for(settings),
        )
    )
