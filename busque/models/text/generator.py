"""A causal LM that decodes several requests together, streaming each one's text as it grows.

Requests decoded together share every forward pass (left-padded prompts, one KV cache); each
keeps its own sampling parameters, seed, stop strings and cancel flag, and finishes on its own
(its row keeps being fed a pad token, masked out, until the whole batch is done).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from busque.models.base import JobCanceled, JobContext, Model


@dataclass
class GenerationRequest:
    prompt_ids: list[int]
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    stop: Sequence[str] = ()
    seed: int | None = None
    emit: Callable[[str], None] = lambda text: None  # each new piece of text, as it is decoded
    cancelled: Callable[[], bool] = lambda: False
    # Filled in by generate_batch:
    text: str = ""
    completion_tokens: int = 0
    finish_reason: str | None = None  # stop | length | canceled
    error: Exception | None = None
    _tokens: list[int] = field(default_factory=list)
    _sent: int = 0


def _resolve_dtype(name: str, device: str):
    import torch

    if name == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    return getattr(torch, name)


class TextGenerator(Model):
    """Options: model_dir (a directory or hub id; a callable returning one is resolved at load),
    device, dtype, model_id."""

    def __init__(self, *, model_dir, device: str = "auto", dtype: str = "auto", model_id: str = ""):
        super().__init__(model_dir=model_dir, device=device, dtype=dtype)
        self.model_id = model_id
        self._forward_lock = threading.Lock()

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from busque.models.embedding.base import resolve_device

        source = self.options["model_dir"]
        source = source() if callable(source) else source
        self.device = resolve_device(self.options["device"])
        self.dtype = _resolve_dtype(self.options["dtype"], self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(source)
        self.lm = AutoModelForCausalLM.from_pretrained(source, dtype=self.dtype).to(self.device)
        self.lm.eval()
        self.eos_ids = _eos_ids(self.lm.generation_config.eos_token_id, self.tokenizer)
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.eos_ids[0]
        self._torch = torch

    def describe(self) -> dict[str, Any]:
        return {"model": self.model_id, "device": self.device, "dtype": str(self.dtype)}

    # ---- prompts ----

    def chat_prompt(self, messages: list[dict]) -> list[int]:
        self.load()
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):  # some tokenizers return an encoding
            ids = ids["input_ids"]
        return list(ids)

    # ---- one job, in-process (the Serve deployment batches jobs instead) ----

    def _predict(self, inputs: dict[str, Any], ctx: JobContext) -> dict:
        params = {**getattr(ctx, "params", {})}
        request = self.request(inputs, params, emit=lambda t: ctx.output({"text": t}))
        request.cancelled = lambda: ctx.cancelled
        self.generate_batch([request])
        if request.finish_reason == "canceled":
            raise JobCanceled(ctx.job_id)
        return result_of(request)

    def request(self, inputs: dict, params: dict, **extra) -> GenerationRequest:
        messages = inputs.get("messages") or [{"role": "user", "content": inputs["prompt"]}]
        keys = ("max_new_tokens", "temperature", "top_p", "stop", "seed")
        return GenerationRequest(
            prompt_ids=self.chat_prompt(messages),
            **{k: params[k] for k in keys if params.get(k) is not None},
            **extra,
        )

    # ---- batched decoding ----

    def generate_batch(self, requests: list[GenerationRequest]) -> None:
        self.load()
        torch = self._torch
        with self._forward_lock, torch.inference_mode():
            self._decode(requests)

    def _decode(self, requests: list[GenerationRequest]) -> None:
        torch = self._torch
        width = max(len(r.prompt_ids) for r in requests)
        ids = torch.full((len(requests), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(requests), width), dtype=torch.long)
        for row, r in enumerate(requests):  # left padding: every prompt ends at the same column
            ids[row, width - len(r.prompt_ids) :] = torch.tensor(r.prompt_ids)
            mask[row, width - len(r.prompt_ids) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        generators = [_generator(torch, r.seed) for r in requests]
        active = [True] * len(requests)
        past, step_input, positions = None, ids, (mask.cumsum(-1) - 1).clamp(min=0)
        for _ in range(max(r.max_new_tokens for r in requests)):
            out = self.lm(
                input_ids=step_input,
                attention_mask=mask,
                position_ids=positions,
                past_key_values=past,
                use_cache=True,
            )
            past = out.past_key_values
            logits = out.logits[:, -1, :].float()
            next_ids = []
            for row, r in enumerate(requests):
                if not active[row]:
                    next_ids.append(self.pad_id)
                    continue
                if r.cancelled():
                    active[row], r.finish_reason = False, "canceled"
                    next_ids.append(self.pad_id)
                    continue
                token = _choose(torch, logits[row], r.temperature, r.top_p, generators[row])
                next_ids.append(token)
                if token in self.eos_ids:
                    active[row], r.finish_reason = False, "stop"
                    continue
                r._tokens.append(token)
                r.completion_tokens += 1
                self._stream(r)
                if r.finish_reason == "stop":
                    active[row] = False
                elif r.completion_tokens >= r.max_new_tokens:
                    active[row], r.finish_reason = False, "length"
            if not any(active):
                break
            step_input = torch.tensor(next_ids, device=self.device)[:, None]
            alive = torch.tensor(active, dtype=torch.long, device=self.device)[:, None]
            mask = torch.cat([mask, alive], dim=1)
            positions = mask.sum(-1, keepdim=True) - 1
        for r in requests:
            if r.finish_reason is None:
                r.finish_reason = "length"
            self._stream(r, final=True)

    def _stream(self, r: GenerationRequest, final: bool = False) -> None:
        """Emit the text decoded since the last call; cut at a stop string."""
        text = self.tokenizer.decode(r._tokens, skip_special_tokens=True)
        if text.endswith("\ufffd") and not final:  # half of a multi-byte character
            return
        for stop in r.stop:
            at = text.find(stop)
            if at != -1:
                text, r.finish_reason = text[:at], "stop"
        # Hold back a tail that could still grow into a stop string.
        hold = 0 if final or r.finish_reason else _stop_prefix(text, r.stop)
        visible = text[: len(text) - hold]
        if len(visible) > r._sent:
            r.emit(visible[r._sent :])
            r._sent = len(visible)
        r.text = text


def result_of(r: GenerationRequest) -> dict:
    return {
        "content": r.text,
        "role": "assistant",
        "tool_calls": None,
        "finish_reason": r.finish_reason,
        "usage": {"prompt_tokens": len(r.prompt_ids), "completion_tokens": r.completion_tokens},
    }


def _stop_prefix(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters of `text` are the start of some stop string."""
    longest = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:n]):
                longest = max(longest, n)
                break
    return longest


def _eos_ids(configured, tokenizer) -> set[int]:
    ids = configured if isinstance(configured, list) else [configured]
    ids = {i for i in ids if i is not None}
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def _generator(torch, seed: int | None):
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def _choose(torch, logits, temperature: float, top_p: float, generator) -> int:
    if temperature <= 0:
        return int(logits.argmax())
    probs = torch.softmax(logits.cpu() / temperature, dim=-1)
    if top_p < 1.0:
        ordered, order = probs.sort(descending=True)
        keep = ordered.cumsum(-1) - ordered < top_p  # the smallest set reaching top_p
        probs = torch.zeros_like(probs).scatter(0, order[keep], ordered[keep])
    return int(torch.multinomial(probs / probs.sum(), 1, generator=generator))
