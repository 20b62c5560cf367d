"""A real headless Chromium (Debian's, driven by Playwright) for the page tests, and helpers to
wait on a page and keep its screenshots in test-artifacts/."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        if os.environ.get("BUSQUE_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is required (BUSQUE_REQUIRE_BROWSER=1)")
        pytest.skip("no chromium installed (apt-get install chromium)")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


def wait(page, condition: str, timeout_s: float = 120, arg=None) -> None:
    """page.wait_for_function, failing with what the page shows (its status lines, messages)."""
    try:
        page.wait_for_function(condition, arg=arg, timeout=timeout_s * 1000)
    except Exception as exc:
        shown = page.evaluate(
            "[...document.querySelectorAll('.status, pre, [role=alert], [role=status], [aria-live]')]"
            ".map(e => e.id + ': ' + e.textContent.trim())"
        )
        raise AssertionError(f"{condition} never held; the page shows {shown}") from exc


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000, f"{path} is nearly empty"
    return path
