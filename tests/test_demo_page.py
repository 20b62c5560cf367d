"""The demo page at `/` in a real headless Chromium (Debian's chromium, driven by Playwright):
a prompt's answer streams in, and a photo becomes an avatar with visible progress. The final
screenshot is written to test-artifacts/demo.png."""

from __future__ import annotations

from tests.browser import ARTIFACTS, wait
from tests.face_photos import astronaut, encode

# Records every text a element shows, so a test can see that text grew in steps.
WATCH = """(id) => {
  window.seen = window.seen || {};
  window.seen[id] = [];
  const node = document.getElementById(id);
  new MutationObserver(() => window.seen[id].push(node.textContent))
    .observe(node, {childList: true, characterData: true, subtree: true});
}"""


def test_demo_page_streams_an_answer_and_makes_an_avatar(app, browser, tmp_path):
    page = browser.new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{app.url}/")
    assert page.title() == "busque demo"
    page.fill("#api-key", app.admin_key)
    page.click("#use-key")
    wait(page, "document.getElementById('whoami').textContent.startsWith('tenant')")
    page.wait_for_selector("#text-model option:not([disabled])", state="attached")

    page.evaluate(WATCH, "answer")
    page.fill("#prompt", "What is the capital of France? Answer in one sentence.")
    page.click("#generate")
    page.wait_for_function(
        "document.getElementById('text-status').textContent.endsWith('succeeded')"
    )
    answer = page.text_content("#answer")
    assert answer.strip()
    growth = page.evaluate("window.seen.answer")
    assert len({text for text in growth if text}) >= 2, growth  # it streamed in, not at once

    photo = tmp_path / "me.jpg"
    photo.write_bytes(encode(astronaut(), quality=90))
    page.evaluate(WATCH, "avatar-status")
    page.set_input_files("#photo", str(photo))
    page.select_option("#style", "watercolor")
    page.fill("#steps", "4")  # the tiny test pipeline: small and quick
    page.evaluate("document.getElementById('size').innerHTML = '<option>64</option>'")
    page.click("#make-avatar")
    wait(
        page,
        "document.getElementById('avatar-result').complete"
        " && document.getElementById('avatar-result').naturalWidth > 0",
    )
    statuses = page.evaluate("window.seen['avatar-status']")
    assert any("step" in s for s in statuses), statuses  # progress per denoising step
    assert page.text_content("#avatar-status").endswith("succeeded")
    assert page.evaluate("document.getElementById('avatar-progress').value") == 100

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo.png"), full_page=True)
    print(f"demo page screenshot: {ARTIFACTS / 'demo.png'}")
    assert (ARTIFACTS / "demo.png").stat().st_size > 10_000
    page.close()


def test_demo_page_shows_a_refused_key(app, browser):
    page = browser.new_page()
    page.goto(f"{app.url}/")
    page.fill("#api-key", "bq_nope_nope")
    page.click("#use-key")
    wait(page, "document.getElementById('whoami').textContent.includes('refused')")
    page.close()
