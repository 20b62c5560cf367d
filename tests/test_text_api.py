"""Text generation through the real app with the real bundled SmolLM2-135M-Instruct: jobs with
tokens streamed over SSE, cancel, seeds, concurrency, the OpenAI-compatible endpoint (with the
`openai` client), the catalog, and bad input."""

from __future__ import annotations

import time

import pytest

from busque.config import Settings
from busque.models.text.weights import unavailable_reason
from tests.conftest import wait_for
from tests.test_events import read_job_sse

pytestmark = pytest.mark.skipif(
    unavailable_reason(Settings()) is not None, reason="no bundled text model"
)

MODEL = "smollm2-135m-instruct"
GREEDY = {"temperature": 0, "max_new_tokens": 16}


def submit(client, inputs: dict, params: dict | None = None) -> dict:
    response = client.post("/v1/jobs", json={"model": MODEL, "input": inputs, "params": params})
    assert response.status_code == 202, response.text
    return response.json()


def test_tokens_stream_as_job_output_and_the_result_is_a_chat_message(client):
    job = submit(client, {"prompt": "What is the capital of France?"}, GREEDY)
    events = read_job_sse(client, job["id"], timeout=120)
    streamed = "".join(
        e["data"]["data"]["chunk"]["text"] for e in events if e["event"] == "job.output"
    )
    (result,) = [e["data"]["data"]["result"] for e in events if e["event"] == "job.result"]
    assert "Paris" in result["content"]
    assert streamed == result["content"]
    assert result["role"] == "assistant" and result["tool_calls"] is None
    assert result["usage"]["prompt_tokens"] > 5
    assert 0 < result["usage"]["completion_tokens"] <= 16
    assert len([e for e in events if e["event"] == "job.output"]) >= 2  # streamed, not at once


def test_same_seed_same_text_and_stop_strings(client):
    params = {"temperature": 0.9, "seed": 11, "max_new_tokens": 12}
    first = wait_for(client, submit(client, {"prompt": "Tell me a story."}, params)["id"], 120)
    again = wait_for(client, submit(client, {"prompt": "Tell me a story."}, params)["id"], 120)
    assert first["result"]["content"] == again["result"]["content"] != ""
    stopped = submit(
        client,
        {"messages": [{"role": "user", "content": "Count from 1 to 10, comma separated."}]},
        {"temperature": 0, "max_new_tokens": 40, "stop": ["5"]},
    )
    done = wait_for(client, stopped["id"], 120)
    assert done["result"]["finish_reason"] == "stop" and "5" not in done["result"]["content"]
    assert "4" in done["result"]["content"]


def test_cancel_stops_generation(client):
    job = submit(
        client,
        {"prompt": "Write a very long story about the sea."},
        {"temperature": 0, "max_new_tokens": 1000},
    )
    deadline = time.monotonic() + 60
    while client.get(f"/v1/jobs/{job['id']}").json()["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(0.5)
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code in (200, 202)
    done = wait_for(client, job["id"], 30)
    assert done["status"] == "canceled"


def test_concurrent_jobs_all_finish_with_the_same_text_as_alone(client):
    prompts = ["Say hello.", "Name a color.", "What is 2+2?", "Name a fruit."]
    alone = [
        wait_for(client, submit(client, {"prompt": p}, GREEDY)["id"], 120)["result"]["content"]
        for p in prompts
    ]
    jobs = [submit(client, {"prompt": p}, GREEDY) for p in prompts]
    together = [wait_for(client, j["id"], 120)["result"]["content"] for j in jobs]
    assert together == alone  # batched decoding changes nothing for greedy requests


def test_openai_client_chat_completions(app):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{app.url}/v1", api_key=app.admin_key, max_retries=0)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    reply = client.chat.completions.create(
        model=MODEL, messages=messages, temperature=0, max_tokens=16
    )
    text = reply.choices[0].message.content
    assert "Paris" in text and reply.choices[0].message.role == "assistant"
    assert reply.usage.completion_tokens > 0 and reply.choices[0].finish_reason in (
        "stop",
        "length",
    )
    pieces = []
    for chunk in client.chat.completions.create(
        model=MODEL, messages=messages, temperature=0, max_tokens=16, stream=True
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
    assert "".join(pieces) == text and len(pieces) >= 2
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-nonexistent", messages=messages)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(
            base_url=f"{app.url}/v1", api_key="bq_bad_key", max_retries=0
        ).chat.completions.create(model=MODEL, messages=messages)
    with pytest.raises(openai.BadRequestError) as refused:  # OpenAI answers 400, never 422
        client.chat.completions.create(model=MODEL, messages=messages, temperature=7)
    assert refused.value.param == "temperature"


def test_catalog_lists_the_text_model_with_its_defaults(client):
    model = client.get(f"/v1/models/{MODEL}").json()
    assert model["available"] and model["kind"] == "text-generation"
    assert model["default_parameters"]["max_new_tokens"] == 256


@pytest.mark.parametrize(
    "inputs,params,code",
    [
        ({"prompt": ""}, {}, "invalid_input"),
        ({"prompt": "   "}, {}, "invalid_input"),
        ({}, {}, "invalid_input"),
        ({"prompt": "hi", "messages": [{"role": "user", "content": "x"}]}, {}, "invalid_input"),
        ({"messages": [{"role": "robot", "content": "x"}]}, {}, "invalid_input"),
        ({"prompt": "hi"}, {"max_new_tokens": 100_000}, "invalid_input"),
        ({"prompt": "hi"}, {"temperature": 3}, "invalid_input"),
        ({"prompt": "hi"}, {"top_p": 0}, "invalid_input"),
        ({"prompt": "hi"}, {"stop": [""]}, "invalid_input"),  # stops at once: an empty answer
        ({"prompt": "hi"}, {"temprature": 0.2}, "invalid_input"),  # misspelt: not ignored
        ({"prompt": "hi", "system": "x"}, {}, "invalid_input"),
        ({"prompt": "word " * 3000}, {}, "prompt_too_long"),
    ],
)
def test_bad_generation_requests_are_refused(client, inputs, params, code):
    response = client.post("/v1/jobs", json={"model": MODEL, "input": inputs, "params": params})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code


def test_unknown_model_is_404(client):
    response = client.post("/v1/jobs", json={"model": "gpt-99", "input": {"prompt": "hi"}})
    assert response.status_code == 404
    chat = client.post(
        "/v1/chat/completions",
        json={"model": "gpt-99", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert chat.status_code == 404 and chat.json()["error"]["code"] == "model_not_found"
    empty = client.post("/v1/chat/completions", json={"model": MODEL, "messages": []})
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "messages"
