"""Benchmarks' quick modes, so none rots: each runs end to end on a little data (its figures
are never checked here: these machines are too noisy for that) and writes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_grouping_runs_every_method_on_a_small_library():
    done = subprocess.run(
        [sys.executable, "bench/grouping.py", "--quick", "--no-write"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines() if line.startswith("| ")]
    phash = {cells[0].strip(): [c.strip() for c in cells] for cells in rows[1:4]}
    # Pairs are exact: busque's index finds every pair the scan of all pairs finds, planted
    # copies and turned copies all; imagededup (where installed) has no turns.
    assert phash["busque"][4] == phash["brute force"][4], done.stdout
    assert phash["busque"][5:7] == ["100.0%", "100.0%"], done.stdout
