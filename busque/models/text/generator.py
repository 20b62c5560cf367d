"""A causal LM that decodes several requests together, streaming each one's text as it grows.

Continuous batching: requests decoded together share every forward pass (one KV cache, histories
left-padded to one length). A new request is prefilled and joins the running batch between two
decoding steps; a finished one leaves it at once. Each keeps its own sampling parameters, seed,
stop strings and cancel flag.
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
    on_done: Callable[[], None] = lambda: None  # called once it has finished
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

    # ---- continuous batching ----

    def generate_batch(self, requests: list[GenerationRequest]) -> None:
        """Decode these requests together, until each has finished."""
        pending = list(requests)

        def take(capacity: int, block: bool) -> list[GenerationRequest]:
            batch, pending[:] = pending[:capacity], pending[capacity:]
            return batch

        self.serve(take, max_rows=len(requests) or 1)

    def serve(self, take: Callable[[int, bool], list[GenerationRequest]], max_rows: int) -> None:
        """Decode until `take` has nothing more. Between decoding steps, `take(capacity, block)`
        hands over up to `capacity` new requests (blocking for one when `block`, i.e. when
        nothing is being decoded); they are prefilled and join the running batch, and rows that
        finish leave it at once."""
        self.load()
        torch = self._torch
        batch = _Batch(torch, self.device)
        while True:
            if batch.rows:
                with self._forward_lock, torch.inference_mode():  # one forward pass at a time
                    self._step(batch)
            fresh = take(max_rows - len(batch.rows), not batch.rows)
            if fresh:
                with self._forward_lock, torch.inference_mode():
                    batch.join(*self._prefill(fresh))
            elif not batch.rows:
                return

    def _prefill(self, requests: list[GenerationRequest]):
        torch = self._torch
        width = max(len(r.prompt_ids) for r in requests)
        ids = torch.full((len(requests), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(requests), width), dtype=torch.long)
        for row, r in enumerate(requests):  # left padding: every prompt ends at the same column
            ids[row, width - len(r.prompt_ids) :] = torch.tensor(r.prompt_ids)
            mask[row, width - len(r.prompt_ids) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        out = self.lm(
            input_ids=ids,
            attention_mask=mask,
            position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
            use_cache=True,
        )
        rows = [_Row(r, _generator(torch, r.seed)) for r in requests]
        keep = self._choose_all(rows, out.logits[:, -1, :].float())
        return rows, out.past_key_values, mask, keep

    def _step(self, batch: _Batch) -> None:
        out = self.lm(
            input_ids=batch.pending[:, None],
            attention_mask=batch.mask,
            position_ids=batch.mask.sum(-1, keepdim=True) - 1,
            past_key_values=batch.cache,
            use_cache=True,
        )
        batch.cache = out.past_key_values
        keep = self._choose_all(batch.rows, out.logits[:, -1, :].float())
        batch.advance(keep)

    def _choose_all(self, rows: list[_Row], logits) -> list[bool]:
        """Pick each row's next token; False for rows that have finished."""
        keep = []
        for index, row in enumerate(rows):
            r = row.request
            if r.cancelled():
                r.finish_reason = "canceled"
            else:
                token = _choose(self._torch, logits[index], r.temperature, r.top_p, row.generator)
                row.token = token
                if token in self.eos_ids:
                    r.finish_reason = "stop"
                else:
                    r._tokens.append(token)
                    r.completion_tokens += 1
                    self._stream(r)
                    if r.finish_reason is None and r.completion_tokens >= r.max_new_tokens:
                        r.finish_reason = "length"
            if r.finish_reason is not None:
                self._stream(r, final=True)
                r.on_done()
            keep.append(r.finish_reason is None)
        return keep

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


@dataclass
class _Row:
    request: GenerationRequest
    generator: Any
    token: int = 0  # the token chosen last, fed at the next step


class _Batch:
    """The running batch: its rows, their KV cache and attention mask (left-padded), and the
    token each row feeds next. The mask already has a column for that token."""

    def __init__(self, torch, device: str):
        self.torch, self.device = torch, device
        self.rows: list[_Row] = []
        self.cache = self.mask = self.pending = None

    def join(self, rows: list[_Row], cache, mask, keep: list[bool]) -> None:
        torch = self.torch
        rows, cache, mask = self._select(rows, cache, mask, keep)
        if not rows:
            return
        mask, pending = self._with_pending(rows, mask)
        if not self.rows:
            self.rows, self.cache, self.mask, self.pending = rows, cache, mask, pending
            return
        # Left-pad the shorter history, then stack the new rows under the running ones. Both
        # masks are one column (the pending token) longer than their caches.
        width = max(self.mask.shape[1], mask.shape[1])
        for mine, theirs in zip(self.cache.layers, cache.layers, strict=True):
            mine.keys = torch.cat(
                [_left_pad(torch, mine.keys, width - 1), _left_pad(torch, theirs.keys, width - 1)]
            )
            mine.values = torch.cat(
                [
                    _left_pad(torch, mine.values, width - 1),
                    _left_pad(torch, theirs.values, width - 1),
                ]
            )
        self.mask = torch.cat([_left_pad(torch, self.mask, width), _left_pad(torch, mask, width)])
        self.pending = torch.cat([self.pending, pending])
        self.rows = self.rows + rows

    def advance(self, keep: list[bool]) -> None:
        self.rows, self.cache, self.mask = self._select(self.rows, self.cache, self.mask, keep)
        if self.rows:
            self.mask, self.pending = self._with_pending(self.rows, self.mask)
            self._trim()

    def _with_pending(self, rows: list[_Row], mask):
        """The mask with a column for each row's next token, and those tokens."""
        torch = self.torch
        pending = torch.tensor([row.token for row in rows], device=self.device)
        ones = torch.ones((len(rows), 1), dtype=mask.dtype, device=self.device)
        return torch.cat([mask, ones], dim=1), pending

    def _select(self, rows, cache, mask, keep):
        if all(keep):
            return rows, cache, mask
        index = [i for i, k in enumerate(keep) if k]
        if not index:
            return [], None, None
        cache.batch_select_indices(self.torch.tensor(index, device=self.device))
        return [rows[i] for i in index], cache, mask[index]

    def _trim(self) -> None:
        """Drop history columns that every remaining row has masked out (left padding of rows
        that have left), so attention does not keep paying for them."""
        lead = int((self.mask.cumsum(-1) == 0).sum(-1).min())
        if lead:
            self.mask = self.mask[:, lead:]
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, lead:], layer.values[:, :, lead:]


def _left_pad(torch, tensor, width: int):
    """Zero-pad dimension 2 (KV history) or 1 (a mask) on the left to `width`."""
    dim = 2 if tensor.dim() == 4 else 1
    missing = width - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat(
        [torch.zeros(shape, dtype=tensor.dtype, device=tensor.device), tensor], dim=dim
    )


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
    scaled = logits.cpu() / temperature
    if not bool(torch.isfinite(scaled).all()):  # a temperature so small it is greedy
        return int(logits.argmax())
    probs = torch.softmax(scaled, dim=-1)
    if top_p < 1.0:
        ordered, order = probs.sort(descending=True)
        keep = ordered.cumsum(-1) - ordered < top_p  # the smallest set reaching top_p
        keep[0] = True  # a top_p below float32's smallest number still keeps the likeliest
        probs = torch.zeros_like(probs).scatter(0, order[keep], ordered[keep])
    return int(torch.multinomial(probs / probs.sum(), 1, generator=generator))
