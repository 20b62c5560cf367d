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


def run_quick(script: str) -> str:
    """A benchmark's quick mode as a subprocess; its stdout (the results page it would write)."""
    done = subprocess.run(
        [sys.executable, script, "--quick", "--no-write"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def table(page: str, heading: str) -> list[list[str]]:
    """The rows (cells stripped) of the first table under `heading` in a results page."""
    section = page.split(heading, 1)[1]
    rows = []
    for line in section.splitlines()[1:]:
        if rows and not line.startswith("|"):
            break
        if line.startswith("| ") or line.startswith("|-"):
            rows.append([cell.strip() for cell in line.split("|")[1:-1]])
    return rows[2:]  # past the header and its rule


def test_phash_compares_busque_with_imagehash_with_and_without_draft():
    page = run_quick("bench/phash.py")
    speed = table(page, "## busque fast against each baseline")
    sets = {row[0] for row in speed}
    assert len(sets) == 3 and any("camera-like" in s for s in sets), page
    for name in sets:
        baselines = {row[2] for row in speed if row[0] == name}
        assert "imagehash.phash" in baselines and "imagehash.phash + draft 128" in baselines
    # Every comparison is read off its interval, and says so in words.
    assert {row[4] for row in speed} <= {"**ahead**", "**level**", "**behind**"}, page
    # busque's exact mode is imagehash bit for bit on every file of every set.
    agreement = table(page, "## Agreement with full-decode imagehash")
    assert len(agreement) == 3
    assert all(row[2] == "100% / 0" for row in agreement), page
    assert "Reproduce: `python bench/phash.py --quick --no-write`" in page


def test_phash_lookup_scores_every_method_against_the_exact_scan():
    page = run_quick("bench/phash_lookup.py")
    headings = [line for line in page.splitlines() if line.startswith("## ") and "codes" in line]
    kinds = {h.split()[1] for h in headings}
    assert kinds == {"real", "skewed", "clustered", "uniform"}, headings
    for heading in headings:
        n = heading.rsplit(" ", 1)[1]  # "## uniform codes, 20,000"
        rows = {row[0]: row for row in table(page, heading)}
        # Each row names its own N: the one of the set it sits under.
        assert {row[1] for row in rows.values()} == {n}, (heading, rows)
        for name in ("busque PhashIndex", "faiss IndexBinaryMultiHash", "faiss IndexBinaryHash"):
            assert name in rows, (heading, rows)
        # Every method finds exactly what the scan finds (busque and FAISS's hashes are exact
        # by construction: a miss here is a bug, in the index or in how the benchmark asks).
        assert all(row[7] == "100.0%" and row[8] == "yes" for row in rows.values()), rows
        assert all(row[10] in ("", "**ahead**", "**level**", "**behind**") for row in rows.values())
    smallest = {row[0] for row in table(page, "## uniform codes, 2,000")}
    assert {"imagededup brute_force_cython", "imagededup bktree", "pybktree"} <= smallest


VERDICTS = {"**ahead**", "**level**", "**behind**"}


def test_faces_scores_every_method_by_face_size():
    page = run_quick("bench/faces.py")
    speed = table(page, "## Speed: busque against each baseline")
    assert {row[2] for row in speed} == {"face_recognition default", "face_recognition + shortcut"}
    assert {row[0] for row in speed} == {"< 1 MP", "2 MP (1800x1350)", "all"}, page
    assert {row[6] for row in speed} <= VERDICTS, page
    recall = table(page, "## Recall by face size: all")
    # The quick canvas places faces of 40, 60, 80 and 120 px, the real photo one of 88:
    # every one is in a size row, and every method's count is out of that row's faces.
    assert [row[0] for row in recall] == ["40-49", "60-69", "80-99", "120-149"]
    assert sum(int(row[1]) for row in recall) == 5, recall
    for row in recall:
        n = int(row[1])
        counts = [cell.split("/") for cell in row[2:5]]
        assert all(int(total) == n and 0 <= int(k) <= n for k, total in counts), row
        lost = [int(cell) for cell in row[5:7]]
        assert all(0 <= v <= n for v in lost), row
    # busque detects on the shortcut baseline's very copy: it cannot find a face that misses.
    assert "busque finds no face the shortcut baseline misses" in page
    assert "only drops detections scored under its min_score): yes." in page, page
    assert "Reproduce: `python bench/faces.py --quick --no-write`" in page


def test_backfill_separates_less_work_parallelism_and_busque():
    page = run_quick("bench/backfill.py")
    methods = table(page, "## embeddings off (8 files)")
    assert [row[0] for row in methods] == [
        "reference, 1 process (the original script)",
        "same-work reference, 1 process",
        "same-work reference, multiprocessing.Pool(2)",
        "busque (Ray Data)",
    ], page
    after = page.split("| gain | by CPU-s per file", 1)[1].split("\n\n", 1)[0]
    gains = [[c.strip() for c in line.split("|")[1:-1]] for line in after.splitlines()[2:]]
    assert [row[0].split(" (")[0] for row in gains] == [
        "doing less work",
        "parallelism",
        "busque vs the same-work Pool(2)",
        "busque vs the original reference",
    ], gains
    assert {row[3] for row in gains} <= VERDICTS, gains
    # Every method stored every unique image (8 files, 2 of them byte copies), and the
    # same-work script made busque's 12 renditions (a JPEG and a WebP each) byte for byte.
    assert "references stored every unique image: yes" in page
    assert "busque uploaded every unique image: yes" in page
    assert "same work renditions equal busque: yes" in page, page
    digests = page.split("(renditions: ", 1)[1].split(").", 1)[0].split("; ")
    assert [d.split()[:2] for d in digests] == [["off", "same_work"], ["off", "busque"]]
    assert all(d.endswith("(12 files)") for d in digests), digests
    assert "second run skipped every file: yes" in page
    assert "Reproduce: `python bench/backfill.py --quick --no-write`" in page


def test_bench_runner_lists_which_scripts_have_a_quick_mode():
    done = subprocess.run(
        [sys.executable, "-m", "bench", "list"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    modes = dict(line.split(None, 1) for line in done.stdout.splitlines())
    assert modes["phash"] == modes["phash_lookup"] == modes["grouping"] == "--quick"
    assert modes["faces"] == modes["backfill"] == "--quick"
    assert modes["jobs"] == "no quick mode yet" and "harness" not in modes
    wrong = subprocess.run(
        [sys.executable, "-m", "bench", "nonesuch"], cwd=ROOT, capture_output=True, text=True
    )
    assert wrong.returncode == 2 and "no such benchmark: nonesuch" in wrong.stderr
