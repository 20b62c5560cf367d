"""The text model itself (no Ray) with the real bundled SmolLM2: continuous batching gives each
request exactly what it gets alone, stop strings, cancel, seeds and streamed pieces."""

from __future__ import annotations

import threading
import time

import pytest

from busque.config import Settings
from busque.models.text.generator import GenerationRequest, TextGenerator, _stop_prefix
from busque.models.text.scheduler import BatchScheduler
from busque.models.text.weights import model_dir, unavailable_reason
from tests.conftest import TEXT_MODEL_CACHE

SETTINGS = Settings(text={"cache_dir": TEXT_MODEL_CACHE})
pytestmark = pytest.mark.skipif(
    unavailable_reason(SETTINGS) is not None, reason="no bundled text model"
)
PROMPTS = ["What is the capital of France?", "Write a haiku about cats.", "Say hello."]


@pytest.fixture(scope="module")
def model():
    lm = TextGenerator(model_dir=lambda: model_dir(SETTINGS))
    lm.load()
    return lm


def ask(model, prompt: str, **options) -> GenerationRequest:
    messages = [{"role": "user", "content": prompt}]
    return GenerationRequest(prompt_ids=model.chat_prompt(messages), **options)


def test_requests_joining_a_running_batch_get_what_they_get_alone(model):
    alone = []
    for prompt in PROMPTS:
        request = ask(model, prompt, max_new_tokens=20)
        model.generate_batch([request])
        alone.append(request.text)
    scheduler = BatchScheduler(model, max_batch=4)
    requests = [ask(model, p, max_new_tokens=20) for p in PROMPTS]
    done = []
    for request in requests:  # staggered: each arrives while the others are decoding
        done.append(scheduler.submit(request))
        time.sleep(0.2)
    assert all(event.wait(60) for event in done)
    assert [r.text for r in requests] == alone
    assert scheduler.joined >= 1  # at least one joined a batch already decoding
    assert all(r.finish_reason in ("stop", "length") for r in requests)


def test_streamed_pieces_add_up_and_stop_strings_cut(model):
    pieces: list[str] = []
    request = ask(
        model,
        "Count from 1 to 10, comma separated.",
        max_new_tokens=40,
        stop=["5"],
        emit=pieces.append,
    )
    model.generate_batch([request])
    assert request.finish_reason == "stop" and "5" not in request.text and "4" in request.text
    assert "".join(pieces) == request.text and len(pieces) > 1


def test_seeds_and_cancel(model):
    first = ask(model, "Tell me a story.", max_new_tokens=12, temperature=0.9, seed=5)
    again = ask(model, "Tell me a story.", max_new_tokens=12, temperature=0.9, seed=5)
    model.generate_batch([first, again])
    assert first.text == again.text
    stop = threading.Event()
    long = ask(model, "Write a long story.", max_new_tokens=500, cancelled=stop.is_set)
    timer = threading.Timer(0.5, stop.set)
    timer.start()
    model.generate_batch([long])
    assert long.finish_reason == "canceled" and long.completion_tokens < 500


def test_a_stop_string_prefix_is_held_back():
    assert _stop_prefix("hello wor", ["world"]) == 3
    assert _stop_prefix("hello", ["xyz"]) == 0


def test_sampling_at_vanishing_temperature_or_top_p_is_greedy():
    """temperature 1e-300 overflowed logits/temperature to inf (NaN probabilities), and a top_p
    below float32's range kept no token: torch.multinomial failed the whole batch."""
    import torch

    from busque.models.text.generator import _choose

    logits = torch.tensor([1.0, 5.0, 2.0, -3.0])
    generator = torch.Generator().manual_seed(0)
    for temperature, top_p in ((1e-300, 0.95), (1e-45, 1.0), (0.7, 1e-300), (1e-300, 1e-300)):
        assert _choose(torch, logits, temperature, top_p, generator) == 1
    picks = {_choose(torch, logits, 5.0, 1.0, generator) for _ in range(200)}
    assert len(picks) > 1  # an ordinary temperature still samples
