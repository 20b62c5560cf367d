"""The OpenAI-compatible routes through the real app with the real `openai` client: embeddings of
texts (all-MiniLM-L6-v2 from its weights package) and of photos (the Embedder), chat with content
parts, the developer role and stream_options.include_usage, a stream whose generator dies in the
middle, every unsupported parameter refused with OpenAI's error naming it, the model list, and
bad input answered with OpenAI-shaped 4xx, never a 500."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import signal
import time

import httpx
import numpy as np
import openai
import pytest
import skimage.data
from PIL import Image, ImageEnhance

from busque.config import Settings
from busque.models.text.weights import unavailable_reason as text_unavailable
from busque.models.text_embedding.minilm import unavailable_reason as minilm_unavailable
from tests.test_ingest import jpeg

CHAT = "smollm2-135m-instruct"
TEXT = "all-minilm-l6-v2"
IMAGE = "efficientnet-lite0"
needs_chat = pytest.mark.skipif(text_unavailable(Settings()) is not None, reason="no text model")
needs_minilm = pytest.mark.skipif(minilm_unavailable() is not None, reason="no MiniLM weights")
HI = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def oai(app):
    return openai.OpenAI(base_url=f"{app.url}/v1", api_key=app.admin_key, max_retries=0)


def cos(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ---- embeddings ----


@needs_minilm
def test_text_embeddings_put_paraphrases_closer_in_both_encodings(oai, app):
    texts = [
        "A dog is running through the park.",
        "A puppy runs across the grass in a park.",
        "The central bank raised interest rates again.",
    ]
    started = time.perf_counter()
    floats = oai.embeddings.create(model=TEXT, input=texts, encoding_format="float")
    elapsed = time.perf_counter() - started
    vectors = [d.embedding for d in floats.data]
    assert [d.index for d in floats.data] == [0, 1, 2] and floats.model == TEXT
    assert all(len(v) == 384 and abs(np.linalg.norm(v) - 1) < 1e-4 for v in vectors)
    assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2]) + 0.3
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > len(texts) * 3
    # The client's default asks for base64 and decodes it: the same float32 values.
    default = oai.embeddings.create(model=TEXT, input=texts)
    np.testing.assert_allclose([d.embedding for d in default.data], vectors, atol=1e-6)
    # base64 on the wire is little-endian float32, as OpenAI sends it.
    raw = httpx.post(
        f"{app.url}/v1/embeddings",
        json={"model": TEXT, "input": texts[0], "encoding_format": "base64"},
        headers={"Authorization": f"Bearer {app.admin_key}"},
    )
    assert raw.status_code == 200, raw.text
    wire = raw.json()["data"][0]["embedding"]
    np.testing.assert_allclose(np.frombuffer(base64.b64decode(wire), "<f4"), vectors[0], atol=1e-6)
    print(f"3 texts embedded in {elapsed * 1000:.0f} ms (first call: replica start included)")


def photo_url(image: Image.Image) -> str:
    return "data:image/jpeg;base64," + b64(jpeg(image))


def test_image_embeddings_put_a_photo_closer_to_its_edit_than_to_another_photo(oai):
    cat = Image.fromarray(skimage.data.chelsea())
    edit = ImageEnhance.Brightness(cat.crop((10, 10, cat.width - 10, cat.height - 10))).enhance(1.2)
    other = Image.fromarray(skimage.data.coffee())
    # A data URL, bare base64 and a PNG data URL all work.
    png = io.BytesIO()
    other.save(png, "PNG")
    inputs = [photo_url(cat), b64(jpeg(edit)), "data:image/png;base64," + b64(png.getvalue())]
    started = time.perf_counter()
    answer = oai.embeddings.create(model=IMAGE, input=inputs, encoding_format="float")
    elapsed = time.perf_counter() - started
    vectors = [d.embedding for d in answer.data]
    assert all(len(v) == 1280 for v in vectors) and answer.model == IMAGE
    assert cos(vectors[0], vectors[1]) > 0.8 > cos(vectors[0], vectors[2])
    assert answer.usage.prompt_tokens == 0
    single = oai.embeddings.create(model=IMAGE, input=inputs[0])
    np.testing.assert_allclose(single.data[0].embedding, vectors[0], atol=1e-5)
    print(f"3 photos embedded in {elapsed * 1000:.0f} ms")


@pytest.mark.parametrize(
    "model,inputs,extra,param,code",
    [
        (IMAGE, ["not base64 at all!"], {}, "input[0]", "invalid_image"),
        (IMAGE, [b64(b"plain bytes, no image")], {}, "input[0]", "invalid_image"),
        (IMAGE, "data:text/plain;base64,aGk=", {}, "input", "invalid_image"),
        (TEXT, "", {}, "input", "invalid_value"),
        (TEXT, ["fine", ""], {}, "input[1]", "invalid_value"),
        (TEXT, [], {}, "input", "invalid_value"),
        (TEXT, [[101, 2023, 102]], {}, "input", "unsupported_value"),
        (TEXT, "hi", {"dimensions": 64}, "dimensions", "unsupported_value"),
        (TEXT, "hi", {"encoding_format": "int8"}, "encoding_format", "invalid_value"),
        (TEXT, "hi", {"extra_body": {"truncate": "END"}}, "truncate", "unknown_parameter"),
    ],
)
def test_bad_embedding_requests_are_openai_400s(oai, model, inputs, extra, param, code):
    if model == TEXT and minilm_unavailable():
        pytest.skip("no MiniLM weights")
    with pytest.raises(openai.BadRequestError) as refused:
        oai.embeddings.create(model=model, input=inputs, **extra)
    assert (refused.value.param, refused.value.code) == (param, code), refused.value.body
    assert refused.value.type == "invalid_request_error" and refused.value.message


def test_unknown_models_missing_keys_and_wrong_bodies_are_openai_shaped(oai, app):
    with pytest.raises(openai.NotFoundError) as missing:
        oai.embeddings.create(model="text-embedding-3-small", input="hi")
    assert (missing.value.code, missing.value.param) == ("model_not_found", "model")
    with pytest.raises(openai.NotFoundError):  # a chat model is no embedding model
        oai.embeddings.create(model=CHAT, input="hi")
    stranger = openai.OpenAI(base_url=f"{app.url}/v1", api_key="bq_wrong", max_retries=0)
    for call in (
        lambda: stranger.embeddings.create(model=TEXT, input="hi"),
        lambda: stranger.chat.completions.create(model=CHAT, messages=HI),
    ):
        with pytest.raises(openai.AuthenticationError) as unauthorized:
            call()
        assert unauthorized.value.code == "invalid_api_key"
    key = {"Authorization": f"Bearer {app.admin_key}"}
    for path in ("/v1/embeddings", "/v1/chat/completions"):
        not_json = httpx.post(f"{app.url}{path}", content=b"{", headers=key)
        assert not_json.status_code == 400
        assert set(not_json.json()["error"]) == {"message", "type", "param", "code"}
        typed = httpx.post(
            f"{app.url}{path}", content=b"x", headers={**key, "Content-Type": "text/plain"}
        )
        assert typed.status_code == 415 and typed.json()["error"]["type"]
    too_big = httpx.post(
        f"{app.url}/v1/embeddings",
        content=b"x" * (app.settings.serve.max_body_bytes + 1),
        headers={**key, "Content-Type": "application/json"},
    )
    assert too_big.status_code == 413 and too_big.json()["error"]["type"] == "invalid_request_error"
    # Every other route keeps busque's envelope, its 401 included.
    busque = httpx.post(f"{app.url}/v1/jobs", json={"model": "sleep", "input": {}})
    assert busque.status_code == 401
    assert set(busque.json()["error"]) == {"code", "message", "details"}


def test_the_model_list_serves_the_openai_client_and_busques_catalog(oai, app):
    models = {m.id: m for m in oai.models.list()}
    assert {IMAGE, "ingest", "sleep"} <= set(models)
    assert all(
        m.object == "model" and m.owned_by == "busque" and m.created > 0 for m in models.values()
    )
    catalog = httpx.get(f"{app.url}/v1/models", headers={"X-API-Key": app.admin_key}).json()
    entries = {m["id"]: m for m in catalog["data"]}
    assert catalog["object"] == "list"
    assert entries[IMAGE]["openai_endpoints"] == ["/v1/embeddings"]
    assert entries[IMAGE]["kind"] == "image-embedding" and "default_parameters" in entries[IMAGE]
    assert entries["sleep"]["openai_endpoints"] == []
    if not minilm_unavailable():
        assert (
            entries[TEXT]["openai_endpoints"] == ["/v1/embeddings"] and entries[TEXT]["available"]
        )
    if not text_unavailable(Settings()):
        assert entries[CHAT]["openai_endpoints"] == ["/v1/chat/completions"]
    assert oai.models.retrieve(IMAGE).owned_by == "busque"


# ---- chat ----


@needs_chat
def test_content_parts_and_the_developer_role_are_what_their_plain_forms_are(oai):
    greedy = {"model": CHAT, "temperature": 0, "max_tokens": 8}
    plain = [
        {"role": "system", "content": "You answer in one word."},
        {"role": "user", "content": "Name a colour.\nJust one."},
    ]
    parts = [
        {"role": "developer", "content": [{"type": "text", "text": "You answer in one word."}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Name a colour."},
                {"type": "text", "text": "Just one."},
            ],
        },
    ]
    a = oai.chat.completions.create(messages=plain, **greedy)
    b = oai.chat.completions.create(messages=parts, **greedy)
    assert a.choices[0].message.content == b.choices[0].message.content
    assert a.usage.prompt_tokens == b.usage.prompt_tokens
    with pytest.raises(openai.BadRequestError) as refused:
        oai.chat.completions.create(
            model=CHAT,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": photo_url(Image.new("RGB", (8, 8)))},
                        },
                    ],
                }
            ],
        )
    assert refused.value.param == "messages[0].content[1].type"
    assert "text only" in refused.value.message


@needs_chat
def test_include_usage_adds_a_last_chunk_with_the_usage_and_only_then(oai, app):
    chunks = list(
        oai.chat.completions.create(
            model=CHAT,
            messages=HI,
            temperature=0,
            max_tokens=6,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    *content, last = chunks
    assert last.choices == [] and last.usage.completion_tokens > 0
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(c.usage is None and len(c.choices) == 1 for c in content)
    assert content[-1].choices[0].finish_reason in ("stop", "length")
    # Without it, no chunk has a usage field at all (as OpenAI streams).
    with httpx.stream(
        "POST",
        f"{app.url}/v1/chat/completions",
        json={"model": CHAT, "messages": HI, "temperature": 0, "max_tokens": 6, "stream": True},
        headers={"Authorization": f"Bearer {app.admin_key}"},
        timeout=60,
    ) as response:
        lines = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    assert all(
        "usage" not in json.loads(line) and json.loads(line)["choices"] for line in lines[:-1]
    )
    with pytest.raises(openai.BadRequestError) as refused:  # stream_options without stream
        oai.chat.completions.create(model=CHAT, messages=HI, stream_options={"include_usage": True})
    assert refused.value.param == "stream_options"


@pytest.mark.parametrize(
    "extra,param",
    [
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
        ({"tool_choice": "auto"}, "tool_choice"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"n": 2}, "n"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"presence_penalty": 1.0}, "presence_penalty"),
        ({"logit_bias": {"42": 5}}, "logit_bias"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"reasoning_effort": "high"}, "reasoning_effort"),
        ({"extra_body": {"best_of": 3}}, "best_of"),
        ({"messages": [{"role": "tool", "content": "x", "tool_call_id": "1"}]}, "messages[0].role"),
        ({"temperature": 9}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
    ],
)
def test_unsupported_parameters_are_refused_naming_them(oai, extra, param):
    call = {"model": CHAT, "messages": HI, "max_tokens": 1, **extra}
    with pytest.raises(openai.BadRequestError) as refused:
        oai.chat.completions.create(**call)
    assert refused.value.param == param, refused.value.body
    assert refused.value.type == "invalid_request_error"


@needs_chat
def test_a_generator_that_dies_mid_stream_ends_the_stream_with_an_error_event(oai, app):
    """The TextGenerator's replica is killed (SIGKILL) while it streams: the client gets an
    OpenAI error event, not a stream that stops silently as if complete. Serve restarts the
    replica; the test waits for it so later tests find a working generator."""
    from ray import serve

    async def generator_pid() -> int:
        handle = serve.get_deployment_handle("TextGenerator", app.settings.serve.app_name)
        return await handle.pid.remote()

    pid = asyncio.run(generator_pid())
    stream = oai.chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": "Write a long story about a cat."}],
        max_tokens=400,
        temperature=0,
        stream=True,
    )
    received = []
    with pytest.raises(openai.APIError) as failed:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
                if len(received) == 2:
                    os.kill(pid, signal.SIGKILL)
    assert len(received) >= 2
    assert failed.value.code == "generation_failed" and failed.value.type == "server_error"
    deadline = time.monotonic() + 90
    while True:
        try:
            oai.chat.completions.create(model=CHAT, messages=HI, max_tokens=1)
            break
        except openai.APIError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


@needs_minilm
def test_a_text_embedding_job_gives_the_vectors_of_the_endpoint(oai, client):
    from tests.conftest import wait_for

    texts = ["A dog is running through the park.", "Interest rates rose."]
    submitted = client.post("/v1/jobs", json={"model": TEXT, "input": {"texts": texts}})
    assert submitted.status_code == 202, submitted.text
    done = wait_for(client, submitted.json()["id"], timeout=60)
    assert done["status"] == "succeeded", done
    direct = oai.embeddings.create(model=TEXT, input=texts, encoding_format="float")
    np.testing.assert_allclose(
        done["result"]["embeddings"], [d.embedding for d in direct.data], atol=1e-6
    )
    assert done["result"]["usage"]["prompt_tokens"] == direct.usage.prompt_tokens
