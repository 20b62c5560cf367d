"""The notebooks run top to bottom against the test instance (as a person would run them), through
busque.client; their own asserts fail if the service misbehaves, and each must show what it is
for (EXPECTED: text its outputs must hold, figures it must draw). In the repository they carry
no outputs."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

# notebook -> (texts its outputs must contain, the least number of figures it draws)
EXPECTED = {
    "01_jobs_quickstart.ipynb": (["{'echo': {'hello': 'notebook'}}", "job_not_found"], 0),
    "02_pet_search.ipynb": (["top match: chelsea", "Egyptian cat"], 1),
    "03_duplicates.ipynb": (["trashed: ['cat, recompressed', 'cat, smaller']"], 1),
    "04_faces_people.ipynb": (["found: Eileen Collins"], 1),
    "05_text_generation.ipynb": (["Paris", "completion_tokens"], 0),
    "06_reindex_and_index_experiments.ipynb": (["snapshot", "HNSW (efSearch)"], 1),
}
MAX_SECONDS = 120  # each: the issue asks for under two minutes on 2 cores


def test_every_notebook_is_expected():
    assert sorted(EXPECTED) == [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebooks_are_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and not [c for c in code if c.outputs or c.execution_count is not None]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, app, monkeypatch):
    monkeypatch.setenv("BUSQUE_URL", app.url)
    monkeypatch.setenv("BUSQUE_API_KEY", app.admin_key)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # this checkout's busque, whatever is installed
    notebook = nbformat.read(path, as_version=4)
    started = time.monotonic()
    NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT)}},
    ).execute()
    took = time.monotonic() - started
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(
        o.get("text", "") if o.output_type == "stream" else o.get("data", {}).get("text/plain", "")
        for o in outputs
    )
    texts, figures = EXPECTED[path.name]
    for wanted in texts:
        assert wanted in text, f"{path.name} never showed {wanted!r}"
    drawn = sum("image/png" in o.get("data", {}) for o in outputs)
    assert drawn >= figures, f"{path.name} drew {drawn} figures, not {figures}"
    assert took < MAX_SECONDS, f"{path.name} took {took:.0f} s"
