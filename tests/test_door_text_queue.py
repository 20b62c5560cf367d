"""The text-generation queue's clients against busque (../shared/seeds/001_*.txt): its API flow
(POST /api/predict, then GET /api/result/<job_id> every 2 s until the result) with the real
bundled SmolLM2, and its demo page's flow in a real Chromium, the page's script unchanged but
for the key its browser context sends."""

from __future__ import annotations

import time

import pytest

from busque.config import Settings
from busque.models.text.weights import unavailable_reason
from tests.test_jobs_api import assert_error

pytestmark = pytest.mark.skipif(
    unavailable_reason(Settings()) is not None, reason="no bundled text model"
)

# The queue's demo page flow: send the text, then poll the result every 2 s and show it.
DEMO_PAGE = """<!doctype html>
<html lang="pt-BR"><body>
<form id="task-form"><textarea id="text-input"></textarea><button type="submit">Enviar</button></form>
<div id="result"></div>
<script>
document.getElementById("task-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const sent = await fetch("/api/predict", {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({text: document.getElementById("text-input").value}),
  });
  const jobId = (await sent.json()).job_id;
  document.getElementById("result").innerText = "Job enviado. ID: " + jobId;
  const timer = setInterval(async () => {
    const data = await (await fetch("/api/result/" + jobId)).json();
    if (data.result) {
      document.getElementById("result").innerText = "Resultado: " + JSON.stringify(data.result);
      clearInterval(timer);
    } else if (data.status) {
      document.getElementById("result").innerText = "Status: " + data.status;
    }
  }, 2000);
});
</script></body></html>"""


def test_predict_then_poll_the_result_every_two_seconds(client):
    sent = client.post("/api/predict", json={"text": "Olá, você pode me ajudar?"})
    assert sent.status_code == 200, sent.text
    job_id = sent.json()["job_id"]
    assert set(sent.json()) == {"job_id"}
    statuses = []
    deadline = time.monotonic() + 180
    while (answer := client.get(f"/api/result/{job_id}")).status_code == 202:
        statuses.append(answer.json()["status"])
        assert time.monotonic() < deadline, statuses
        time.sleep(2)
    assert answer.status_code == 200, answer.text
    result = answer.json()["result"]
    assert set(result) == {"content", "role", "tool_calls"}
    assert result["role"] == "assistant" and result["tool_calls"] is None
    assert result["content"].strip()
    assert set(statuses) <= {"pending", "running"}
    # It is a busque job like any other: the same id on busque's own API.
    assert client.get(f"/v1/jobs/{job_id}").json()["result"]["content"] == result["content"]


def test_bad_requests_get_clear_answers(app, client, other_tenant_key):
    assert_error(client.post("/api/predict", json={}), 400, "invalid_request")
    assert_error(client.post("/api/predict", json={"text": "   "}), 400, "invalid_request")
    assert_error(client.post("/api/predict", json={"text": 5}), 422, "invalid_request")
    assert_error(client.get("/api/result/job_doesnotexist"), 404, "job_not_found")
    job_id = client.post("/api/predict", json={"text": "oi"}).json()["job_id"]
    with app.client(other_tenant_key) as other:
        assert_error(other.get(f"/api/result/{job_id}"), 404, "job_not_found")
    with app.client() as keyless:
        keyless.headers.pop("X-API-Key")
        assert_error(keyless.post("/api/predict", json={"text": "oi"}), 401, "unauthorized")
        assert_error(keyless.get(f"/api/result/{job_id}"), 401, "unauthorized")


def test_the_demo_page_flow_in_a_browser(app, browser):
    context = browser.new_context(extra_http_headers={"X-API-Key": app.admin_key})
    page = context.new_page()
    page.route(
        f"{app.url}/demo-frontend/",
        lambda route: route.fulfill(body=DEMO_PAGE, content_type="text/html"),
    )
    try:
        page.goto(f"{app.url}/demo-frontend/")
        page.fill("#text-input", "Olá, você pode me ajudar?")
        page.click("button[type=submit]")
        page.wait_for_function(
            "document.getElementById('result').innerText.startsWith('Resultado: ')",
            timeout=180_000,
        )
        shown = page.inner_text("#result").removeprefix("Resultado: ")
        assert '"role":"assistant"' in shown and '"tool_calls":null' in shown
    finally:
        context.close()
