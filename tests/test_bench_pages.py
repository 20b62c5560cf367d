"""Every committed results page is what its script makes of its committed data: the page's
text (all but its run line) from `markdown(data)`, and where the script has one, the
summary from `summarise(runs)`. It keeps pages and code in step between full runs, and covers
the rendering of the scripts too long for a smoke test here (bench/cluster.py,
bench/idle_memory.py)."""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def rendered_scripts() -> list[str]:
    """The bench scripts with a `markdown(data)` and a committed page and data."""
    names = []
    for script in sorted((ROOT / "bench").glob("*.py")):
        source = script.read_text()
        has_page = (RESULTS / f"{script.stem}.json").exists() and (
            RESULTS / f"{script.stem}.md"
        ).exists()
        if has_page and "\ndef markdown(" in source:
            names.append(script.stem)
    return names


def test_the_pages_rendered_from_data_are_found():
    assert {"cluster", "idle_memory", "backfill", "faces", "image"} <= set(rendered_scripts())


@pytest.mark.parametrize("name", rendered_scripts())
def test_a_committed_page_is_its_script_rendering_its_committed_data(name):
    script = importlib.import_module(f"bench.{name}")
    data = json.loads((RESULTS / f"{name}.json").read_text())
    page = (RESULTS / f"{name}.md").read_text().rstrip("\n")
    body, footer = page.rsplit("\n\n", 1)
    assert footer.startswith("Run ") and data["run"]["commit"] in footer, footer
    assert script.markdown(data).rstrip("\n") == body
    summarise = getattr(script, "summarise", None)
    if summarise is not None and "summary" in data:
        wanted = inspect.signature(summarise).parameters
        args = [data["runs"]] + ([data["cases_run"]] if "cases" in wanted else [])
        assert json.loads(json.dumps(summarise(*args))) == data["summary"]
