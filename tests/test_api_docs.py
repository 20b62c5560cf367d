"""The interactive docs work offline: Swagger UI's scripts come from the server itself (here
every request to another host is refused), the page shows busque's API with its security
schemes, Authorize takes a key, and Try it out uploads a photo to /v1/ingest (202)."""

from __future__ import annotations

import httpx
import skimage.data
from PIL import Image

from tests.browser import browser, screenshot  # noqa: F401 (a fixture)
from tests.conftest import wait_for


def test_the_spec_declares_the_keys_and_the_ingest_body(app):
    spec = httpx.get(f"{app.url}/openapi.json").json()
    schemes = spec["components"]["securitySchemes"].values()
    assert any(
        s["type"] == "apiKey" and s["in"] == "header" and s["name"] == "X-API-Key" for s in schemes
    )
    assert any(s["type"] == "http" and s["scheme"] == "bearer" for s in schemes)
    ingest = spec["paths"]["/v1/ingest"]["post"]
    body = ingest["requestBody"]["content"]
    assert body["multipart/form-data"]["schema"]["properties"]["image"]["format"] == "binary"
    json_body = body["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert "object_key" in spec["components"]["schemas"][json_body]["properties"]
    assert ingest["security"]  # the Authorize dialog's keys are sent with it
    assert httpx.get(f"{app.url}/redoc").status_code == 200


def test_swagger_ui_renders_authorizes_and_uploads_offline(browser, app, tmp_path):  # noqa: F811
    # Bytes no other test ingests: the tenant is shared, and backfills skip bytes it has.
    photo = tmp_path / "chelsea.jpg"
    Image.fromarray(skimage.data.chelsea()).crop((10, 10, 290, 230)).save(photo, quality=83)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    outside = []

    def only_this_server(route):
        if route.request.url.startswith(app.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_this_server)
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{app.url}/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "busque" in page.inner_text(".swagger-ui .info .title")

    page.click("button.authorize")
    page.locator(".modal-ux input[type=text]").first.fill(app.admin_key)
    page.locator(".modal-ux button.authorize[type=submit]").first.click()
    page.locator(".modal-ux button.btn-done").first.click()

    ingest = page.locator(".opblock-post", has=page.locator('[data-path="/v1/ingest"]'))
    ingest.locator(".opblock-summary").click()
    ingest.locator("button.try-out__btn").click()
    ingest.locator("input[type=file]").set_input_files(str(photo))
    ingest.locator("button.execute").click()
    status = ingest.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for()
    screenshot(page, "api-docs-ingest")
    assert status.inner_text().strip() == "202", ingest.locator(
        ".live-responses-table"
    ).inner_text()
    body = ingest.locator(".live-responses-table .microlight").first.inner_text()
    assert '"job_id"' in body and '"phash"' in body
    job_id = body.split('"job_id": "')[1].split('"')[0]
    with app.client() as client:
        assert wait_for(client, job_id, 120)["status"] == "succeeded"
    assert outside == []  # nothing was asked of another host
    context.close()
