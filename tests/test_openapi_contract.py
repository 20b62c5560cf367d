"""`/openapi.json` describes what the server really does: a valid OpenAPI 3.1 document whose
every operation documents its answers (busque's error envelope, never FastAPI's `{"detail"}`),
and every answer the server gave, to this file's calls and to every other test of the session
(busque.testing.answers records what `App.client` receives), is documented for its route with
the status, content type and schema it came with."""

from __future__ import annotations

import io

import httpx
import pytest
from openapi_spec_validator import validate
from PIL import Image

from busque.testing.answers import LOG, Contract, summary
from tests.conftest import wait_for

ENVELOPE = "#/components/schemas/ErrorEnvelope"
# Operations whose errors keep another shape on purpose (OpenAI's, for the `openai` client).
OTHER_ERROR_SHAPES = ("/v1/chat/completions", "/v1/embeddings")


@pytest.fixture(scope="module")
def contract(app) -> Contract:
    return Contract(httpx.get(f"{app.url}/openapi.json").json())


def operations(spec: dict):
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", path, operation


def test_the_document_is_valid_openapi_with_webhooks(contract):
    validate(contract.spec)
    spec = contract.spec
    assert set(spec["webhooks"]) == {"job.status", "job.result", "job.progress", "job.output"}
    headers = {p["name"] for p in spec["webhooks"]["job.status"]["post"]["parameters"]}
    assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert "HTTPValidationError" not in str(spec)
    assert {"APIKeyHeader", "HTTPBearer"} <= set(spec["components"]["securitySchemes"])


def test_every_operation_documents_a_typed_answer_and_its_errors(contract):
    untyped, wrong_errors, unkeyed = [], [], []
    for name, path, operation in operations(contract.spec):
        responses = operation["responses"]
        success = {s: r for s, r in responses.items() if s.startswith("2")}
        for status, response in success.items():
            content = response.get("content", {})
            if status != "204" and not any(c.get("schema") for c in content.values()):
                untyped.append(f"{name} {status}")
        for status, response in responses.items():
            if status[0] in "45" and not path.startswith(OTHER_ERROR_SHAPES):
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if name != "GET /readyz" and schema != {"$ref": ENVELOPE}:
                    wrong_errors.append(f"{name} {status}")
        if operation.get("security") and not {"401", "403"} <= set(responses):
            unkeyed.append(name)
    assert not untyped and not wrong_errors and not unkeyed, (untyped, wrong_errors, unkeyed)
    streams = {
        name: operation["responses"]["200"]["content"]
        for name, _, operation in operations(contract.spec)
        if name in ("GET /v1/events", "GET /v1/jobs/{job_id}/events")
    }
    assert all(list(content) == ["text/event-stream"] for content in streams.values()), streams


def jpeg(color: tuple[int, int, int], size=(64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "JPEG")
    return out.getvalue()


def test_a_sweep_of_real_answers_matches_the_document(app, contract, other_tenant_key):
    """Successes and refusals of the main routes, each checked at once (the suite's other
    answers are checked by the last test)."""
    first = len(LOG.answers)
    with app.client() as c, app.client(other_tenant_key) as other:
        job = c.post("/v1/jobs", json={"model": "echo", "input": {"hello": "contract"}}).json()
        wait_for(c, job["id"])
        c.get(f"/v1/jobs/{job['id']}")
        c.get("/v1/jobs", params={"limit": 2})
        c.get("/v1/jobs", params={"cursor": "not-a-cursor"})  # 400
        c.get("/v1/jobs", params={"status": "sleeping"})  # 422
        c.post(f"/v1/jobs/{job['id']}/cancel")  # 409: finished
        c.post(f"/v1/jobs/{job['id']}/retry")  # 409: succeeded
        c.get(f"/v1/jobs/{job['id']}/artifacts")
        events = c.get(f"/v1/jobs/{job['id']}/events")  # finished: the stream ends at once
        assert events.text.count("data:") >= 3, events.text
        c.get(f"/v1/jobs/{job['id']}/webhooks")
        other.get(f"/v1/jobs/{job['id']}")  # 404: another tenant's
        c.post("/v1/jobs", content=b"{", headers={"content-type": "application/json"})  # 400
        c.post("/v1/jobs", content=b"x", headers={"content-type": "text/plain"})  # 415
        c.post("/v1/jobs", json={"model": "no-such-model"})  # 404
        c.post("/v1/jobs", json={"model": "echo", "priority": "high"})  # 422
        with app.client("not-a-key") as stranger:
            stranger.post("/v1/jobs", json={"model": "echo"})  # 401 at the gate
            stranger.get("/v1/jobs")  # 401 in the route
        c.get("/v1/me")
        c.get("/v1/models")
        c.get("/v1/models/echo")
        c.get("/v1/models/nothing")  # 404
        c.post("/v1/uploads", json={"filename": "a.jpg", "content_type": "image/jpeg"})
        c.post("/v1/uploads", json={"filename": 5})  # 422
        accepted = c.post(
            "/v1/ingest",
            files={"image": ("c.jpg", jpeg((201, 17, 99)), "image/jpeg")},
            data={"collection": "contract", "metadata": "{}"},
        )
        assert accepted.status_code == 202, accepted.text
        media_id = accepted.json()["media_id"]
        wait_for(c, accepted.json()["job_id"])
        c.post("/v1/ingest", files={"image": ("x.jpg", b"not a photo", "image/jpeg")})  # 4xx
        c.get(f"/v1/media/{media_id}")
        c.get("/v1/media", params={"collection": "contract"})
        c.get("/v1/media/med_missing")  # 404
        c.get("/v1/collections")
        c.put("/v1/collections/contract", json={"faces": False})
        c.post("/v1/search", json={"media_id": media_id, "collection": "contract", "k": 3})
        c.post(
            "/v1/search",
            files={"image": ("q.jpg", jpeg((200, 20, 100)), "image/jpeg")},
            data={"collection": "contract"},
        )
        c.post("/v1/search", json={"phash": "zz"})  # 422
        c.get("/v1/duplicates", params={"collection": "contract"})
        c.post("/v1/duplicates/resolutions/res_missing/undo")  # 404
        c.get("/v1/trash", params={"collection": "contract"})
        c.get("/v1/faces", params={"limit": 5})
        c.get("/v1/people", params={"limit": 5})
        c.get("/v1/people/per_missing")  # 404
        c.get("/healthz")
        c.get("/readyz")
        c.delete(f"/v1/media/{media_id}")  # 204
    answers = LOG.answers[first:]
    statuses = {a.status for a in answers}
    assert {200, 201, 202, 204, 400, 401, 404, 409, 415, 422} <= statuses, statuses
    problems = [p for a in answers for p in contract.problems(a)]
    assert not problems, summary(problems)


@pytest.mark.after_suite
def test_every_answer_the_suite_received_is_documented(contract):
    """Runs last (tests/conftest.py): all answers `App.client` received in this session."""
    assert len(LOG.answers) > 40  # at least this file's own
    problems = [p for a in LOG.answers for p in contract.problems(a)]
    assert not problems, summary(problems)
