"""The notebooks run top to bottom against the test instance (as a person would run them)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, app, monkeypatch):
    monkeypatch.setenv("BUSQUE_URL", app.url)
    monkeypatch.setenv("BUSQUE_API_KEY", app.admin_key)
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("succeeded" in str(o) or "notebook" in str(o) for o in outputs)
