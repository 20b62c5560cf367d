"""Benchmarks' quick modes, so none rots: each runs end to end on a little data (its figures
are never checked here: these machines are too noisy for that) and writes nothing."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from busque.testing.servers import postgres_available, rabbitmq_binary

ROOT = Path(__file__).resolve().parents[1]


def test_grouping_runs_every_method_on_a_small_library():
    page = run_quick("bench/grouping.py")
    phash = {row[0]: row for row in table(page, "### 2,000 items, pHash (codes and 7 turns)")}
    # Pairs are exact: busque's index finds every pair the scan of all pairs finds, planted
    # copies and turned copies all; imagededup (where installed) has no turns.
    assert phash["busque"][4] == phash["brute force"][4], page
    assert phash["busque"][5:7] == ["100.0%", "100.0%"], page
    # Each half's verdict is read off the fastest other method's time.
    verdicts = table(page, "## busque against the fastest other method")
    assert [row[1] for row in verdicts] == ["pHash", "pHash + embeddings"], page
    assert all(re.fullmatch(r"~?[\d,.]+x \((ahead|\*\*behind\*\*)\)", r[5]) for r in verdicts)


def run_quick(script: str, *options: str, env: dict | None = None) -> str:
    """A benchmark's quick mode as a subprocess; its stdout (the results page it would write)."""
    done = subprocess.run(
        [sys.executable, script, "--quick", "--no-write", *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=None if env is None else {**os.environ, **env},
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
    assert "pybktree" in smallest
    if importlib.util.find_spec("imagededup") is None:  # optional: the page says it was not run
        assert "Not run (not installed here): imagededup" in page
    else:
        assert {"imagededup brute_force_cython", "imagededup bktree"} <= smallest


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
    quick = ("phash", "phash_lookup", "grouping", "jobs", "faces", "backfill", "quality")
    quick += ("search", "serve_hop", "reindex", "ingest_io", "vector_search", "embed", "image")
    quick += ("review_pages",)
    assert {modes[name] for name in quick} == {"--quick"}, modes
    assert "harness" not in modes and "peers" not in modes  # helpers, not benchmarks
    # A script's `NEEDS = "cluster"` is shown, and `all` leaves it out.
    assert modes["cluster"] == "--quick, needs a cluster", modes
    assert modes["gpu_index"] == "no quick mode yet, needs a GPU", modes
    wrong = subprocess.run(
        [sys.executable, "-m", "bench", "nonesuch"], cwd=ROOT, capture_output=True, text=True
    )
    assert wrong.returncode == 2 and "no such benchmark: nonesuch" in wrong.stderr


INTERVAL = re.compile(r"^(-?[0-9.]+) \[(-?[0-9.]+), (-?[0-9.]+)\]$")


def test_jobs_runs_busque_against_the_job_queues_users_pick():
    if not postgres_available():
        if os.environ.get("BUSQUE_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL server binaries are required (BUSQUE_REQUIRE_POSTGRES=1)")
        pytest.skip("no PostgreSQL server binaries: the quick mode runs busque on PostgreSQL")
    redis = shutil.which("redis-server") is not None
    if not redis and os.environ.get("BUSQUE_REQUIRE_REDIS") == "1":
        pytest.fail("redis-server is required (BUSQUE_REQUIRE_REDIS=1)")
    rabbitmq = rabbitmq_binary() is not None
    if not rabbitmq and os.environ.get("BUSQUE_REQUIRE_RABBITMQ") == "1":
        pytest.fail("rabbitmq-server is required (BUSQUE_REQUIRE_RABBITMQ=1)")
    installed = {p: importlib.util.find_spec(p) is not None for p in ("celery", "rq")}
    installed["procrastinate"] = importlib.util.find_spec("procrastinate") is not None
    page = run_quick("bench/jobs.py")

    # Each peer runs where its server and package are here; else it is named as skipped, never
    # silently left out.
    peers = {
        "celery_redis": ("Celery + Redis", redis, installed["celery"]),
        "rq_redis": ("RQ + Redis", redis, installed["rq"]),
        "celery_rabbitmq": ("Celery + RabbitMQ", rabbitmq, installed["celery"]),
        "procrastinate_postgres": ("procrastinate + PostgreSQL", True, installed["procrastinate"]),
    }
    expected = {"busque (POST, GET ?wait=30)", "busque (POST, Prefer: wait=30)", "plain Ray tasks"}
    for name, (label, server, package) in peers.items():
        if server and package:
            expected.add(label)
        elif server:
            assert f"Skipped: {name}: No module named" in page, page
    if not redis:
        assert "Skipped: Celery and RQ: no `redis-server`" in page, page
    if not rabbitmq:
        assert "Skipped: Celery + RabbitMQ: no RabbitMQ" in page, page
    assert "Skipped: busque on SQLite: --quick runs one phase, PostgreSQL" in page

    cases = {row[0]: row for row in table(page, "## busque on PostgreSQL, interleaved")}
    assert set(cases) == expected, page
    for row in cases.values():
        for cell in row[1:]:  # median [low, high] of the rounds, each figure
            median, low, high = map(float, INTERVAL.match(cell).groups())
            assert 0 <= low <= median <= high, row
        assert float(INTERVAL.match(row[1]).group(2)) > 0, row  # jobs done in every round

    verdicts = table(page, "busque's advantage over each")
    peers = expected - {"busque (POST, GET ?wait=30)", "busque (POST, Prefer: wait=30)"}
    pairs = {(row[0], row[1]) for row in verdicts}
    assert pairs == {(mine, peer) for mine in expected - peers for peer in peers}, verdicts
    words = [cell for row in verdicts for cell in row[3::2]]
    assert set(words) <= {"**ahead**", "**level**", "**behind**"} and len(words) == 3 * len(pairs)
    for row in verdicts:
        for ratio, word in zip(row[2::2], row[3::2], strict=True):
            _, low, high = map(float, INTERVAL.match(ratio).groups())
            # ahead: all of the interval above 1; behind: all below; level: it holds 1 (as
            # shown, to 2 digits)
            holds = {"**ahead**": low >= 1, "**behind**": high <= 1, "**level**": low <= 1 <= high}
            assert holds[word], row
    # The summary names every comparison busque is behind in, no more, no fewer.
    behind = words.count("**behind**")
    summary = page.split("## Where busque is behind", 1)[1].split("\n## ", 1)[0]
    listed = [line for line in summary.splitlines() if line.startswith("- ")]
    assert len(listed) == behind, summary
    if behind:
        assert f"Behind in {behind} of {len(words)} comparisons" in summary
    else:
        assert "Nowhere in this run." in summary

    versions = page.split("Versions: ", 1)[1].split("\n", 1)[0]
    for name, package in (("Celery", "celery"), ("RQ", "rq"), ("procrastinate", "procrastinate")):
        if any(case.startswith(name) for case in cases):
            assert f"{package} " in versions, versions
    assert ("redis-server " in versions) == redis and ("rabbitmq-server " in versions) == rabbitmq
    assert "Reproduce: `python bench/jobs.py --quick --no-write`" in page


def fresh_tenant_key(app, tenant: str) -> str:
    """A key of a tenant of the benchmark's own, so its traffic changes nothing other tests see."""
    from busque.cli import _key_store

    return _key_store(app.settings).create(f"{tenant}-{os.getpid()}", "bench smoke").key


def test_text_runs_busque_against_the_peers_on_the_session_app(app):
    """busque's part against the session's running app (its real SmolLM2), through a tenant of
    its own; the in-process peers on the same weights and token count."""
    key = fresh_tenant_key(app, "bench-text")
    page = run_quick("bench/text.py", "--url", app.url, env={"BUSQUE_API_KEY": key})
    cases = {row[0]: row for row in table(page, "## Every case")}
    expected = {
        "generate() c=1",
        "transformers CB c=1",
        "transformers CB c=4",
        "busque chat c=1",
        "busque chat c=4",
        "busque jobs c=1",
    }
    if importlib.util.find_spec("llama_cpp") is None:  # no prebuilt wheel: named, never hidden
        assert "- llama.cpp: llama-cpp-python is not installed here" in page, page
    else:
        expected |= {"llama.cpp c=1", "llama.cpp c=4"}
    assert set(cases) == expected, page
    assert "- transformers serve: --quick starts no peer server" in page  # full runs only
    for row in cases.values():
        for cell in row[2:7]:  # median [low, high] over the rounds
            median, low, high = map(float, INTERVAL.match(cell).groups())
            assert 0 <= low <= median <= high, row
        assert row[7] == "4-4", row  # every request ran to max_new_tokens (4)
    # Same weights, greedy, one request at a time: busque and transformers' batching say
    # exactly what generate() says.
    for name in ("transformers CB c=1", "busque chat c=1", "busque jobs c=1"):
        same, total = cases[name][8].split("/")
        assert same == total and int(total) >= 1, cases[name]
    assert "peers' chat template on every prompt of the warm-up: yes." in page
    pairs = table(page, "## busque against each peer")
    assert {(row[0], row[1]) for row in pairs} == {
        (mine, peer)
        for mine in expected
        if mine.startswith("busque")
        for peer in expected
        if not peer.startswith("busque") and peer.endswith(mine[-4:])
    }, pairs
    assert {row[3] for row in pairs} | {row[5] for row in pairs} <= VERDICTS, pairs
    assert "**Floor** (busque chat tokens/s at concurrency 1" in page
    gains = {row[0] for row in table(page, "## Does busque batch?")}
    assert {"busque chat c=4", "transformers CB c=4"} <= gains, page
    assert "## Where busque is behind" in page
    assert "Reproduce: `python bench/text.py --quick --no-write --url" in page


def test_hardening_measures_each_attack_against_busque_idle(app):
    # Against the session's running app (starting one costs more than the whole quick mode).
    page = run_quick(
        "bench/hardening.py",
        *("--url", app.url),
        *("--api-key", fresh_tenant_key(app, "bench-quiet")),
        *("--noisy-key", fresh_tenant_key(app, "bench-noisy")),
    )
    slow = table(page, "slow sockets of tenant A")
    assert [row[0] for row in slow] == ["healthz", "search"], page
    for row in slow:
        for cell in row[1:5]:
            median, low, high = map(float, INTERVAL.match(cell).groups())
            assert 0 < low <= median <= high, row
        assert row[6] in VERDICTS and row[7] in ("met", "NOT met"), row
    # The slow sockets were held, and a body without a key was answered 401 before it ended.
    assert "'slow headers': " in page and "'body without a key: 401'" in page, page
    neighbour = table(page, "while tenant A floods jobs")
    assert [row[0] for row in neighbour] == ["p50", "p99"] and neighbour[0][5] in ("met", "NOT met")
    assert {row[4] for row in neighbour} <= VERDICTS, neighbour
    hooks = table(page, "while tenant A's receiver trickles")
    assert [row[0] for row in hooks] == ["idle", "A trickling"] and hooks[1][3] in VERDICTS
    assert "## Where busque is behind" in page
    assert "Reproduce: `python bench/hardening.py --quick --no-write --url" in page
    assert "--api-key KEY --noisy-key KEY`" in page  # the keys are not on the page


def test_duplicates_scores_busque_and_imagededup_with_hard_negatives_in_both_halves():
    page = run_quick("bench/duplicates.py")
    # 4 edits + the original of each shot: 5 x 5 pairs of two shots of one scene in each half.
    assert (
        "Pairs of two shots (the shots and their edits): 25 in the tuning half, 25 in the" in page
    )
    spread = {row[0]: row for row in table(page, "## Pixel agreement on the scored half")}
    assert spread["stereo views"][1] == "25", spread
    chosen = table(page, "## Chosen on the tuning half")
    assert [row[0] for row in chosen] == ["phash", "phash+turns", "visual", "groups"], page
    peer = {row[0]: row for row in table(page, "## Against the peer: imagededup's PHash")}
    if importlib.util.find_spec("imagededup") is None:  # optional: the page says it was not run
        assert "Not run (not installed here): imagededup" in page
    else:
        assert set(peer) == {
            "busque groups (tuned)",
            "imagededup PHash, its default (10 bits)",
        } | {name for name in peer if name.startswith("imagededup PHash, chosen on the tuning")}
        assert len(peer) == 3, peer
        for name, row in peer.items():
            if name.startswith("imagededup"):
                assert row[5] in VERDICTS and row[7] in VERDICTS, row
    assert "Where busque is behind the peer: " in page or "Not run" in page
    assert "Reproduce: `python bench/duplicates.py --quick --no-write`" in page


def test_quality_scores_on_split_b_at_thresholds_chosen_on_split_a():
    page = run_quick("bench/quality.py")
    methods = {
        "busque search, pHash mode",
        "busque search, visual mode (embedding)",
        "busque search, hybrid mode",
        "busque GET /v1/duplicates (pHash+turns, embedding, pixel check)",
    }
    imagededup = importlib.util.find_spec("imagededup") is not None
    if imagededup:
        methods.add("imagededup PHash")
    else:  # optional: the page says it was not run
        assert "Not run (not installed here): imagededup" in page
    # Both splits hold hard negatives (other shots of one scene), and duplicates.
    data = {row[0]: row for row in table(page, "## The data")}
    assert set(data) == {"A", "B"}, data
    assert all(int(row[4]) > 0 and int(row[5]) > 0 for row in data.values()), data
    # Every method is scored on B at exactly the threshold it was given on A.
    chosen = {row[0]: row[1] for row in table(page, "## Thresholds chosen on split A")}
    scored = {row[0]: row for row in table(page, "## Scored on split B at the thresholds")}
    assert set(chosen) == set(scored) == methods, (chosen, scored)
    assert all(scored[name][1] == chosen[name] for name in methods), (chosen, scored)
    for row in scored.values():  # precision, recall, F1 with their bootstrap interval
        assert all(INTERVAL.match(cell) for cell in row[2:5]), row
    defaults = {row[0]: row[1] for row in table(page, "## Scored on split B at each method's")}
    assert set(defaults) == methods
    assert defaults["busque search, pHash mode"] == "max_phash_distance 8", defaults
    if imagededup:
        assert defaults["imagededup PHash"] == "max_distance_threshold 10", defaults
        against = table(page, "## Against imagededup")
        assert {row[2] for row in against} <= VERDICTS and len(against) == 4, against
    assert "The flag agrees with the curve's comparison on every pair: yes." in page
    assert "## Where busque is behind" in page and "- imagededup CNN: " in page
    # The precision-recall curve's data: every method, more than one point.
    curves = {row[0]: int(row[1]) for row in table(page, "## Precision-recall curves on split B")}
    assert set(curves) == methods and min(curves.values()) > 1, curves
    assert "Reproduce: `python bench/quality.py --quick --no-write`" in page


def assert_intervals(row: list[str], columns) -> None:
    """Each of these cells reads `median [low, high]`, in order."""
    for cell in (row[i] for i in columns):
        median, low, high = map(float, INTERVAL.match(cell).groups())
        assert low <= median <= high, row


def test_search_benches_a_running_busque_against_fastapi(app):
    """Against the session's app (a fresh tenant of its own: its collection and traffic change
    nothing other tests see), as a user benches a deployment: --url and --api-key."""
    key = fresh_tenant_key(app, "bench-search")
    page = run_quick("bench/search.py", "--url", app.url, "--api-key", key)
    rows = table(page, "## Every case, interleaved")
    assert {(row[0], row[1]) for row in rows} == {
        (case, c) for case in ("busque", "FastAPI + FAISS (2 workers)") for c in ("1", "8")
    }, page
    for row in rows:
        assert_intervals(row, (2, 3, 4))
        # every query's original is among the photos: both servers must find it first
        assert row[6] == "8/8", row
    # busque's own batch sizes are read off its answers; the peer has none
    assert all(INTERVAL.match(row[5]) for row in rows if row[0] == "busque"), rows
    versus = table(page, "## busque against each")
    assert {(row[1], row[2]) for row in versus} == {
        ("FastAPI + FAISS (2 workers)", c) for c in ("1", "8")
    }
    assert {row[4] for row in versus} | {row[6] for row in versus} <= VERDICTS, versus
    floors = table(page, "## Floors")
    assert [row[0].split(" <=")[0] for row in floors] == [
        "busque's p50 over the FastAPI peer's at concurrency 1"
    ]
    assert floors[0][2] in ("yes", "no")
    assert "## Where busque is behind" in page
    assert "Skipped: busque with batching off: --url benches one deployment as is." in page
    assert "Reproduce: `python bench/search.py --quick --no-write --url" in page


def test_serve_hop_compares_the_serve_handle_with_an_actor_and_http():
    """Its own Ray (a DeploymentHandle is what it measures: no --url)."""
    page = run_quick("bench/serve_hop.py")
    rows = table(page, "## Overhead by callee duration")
    assert [(row[0], row[1]) for row in rows] == [("busy", "0"), ("busy", "4")], page
    for row in rows:
        assert_intervals(row, (2, 3, 4, 5, 7))
        assert {row[6], row[8]} <= VERDICTS, row
    legs = table(page, "## Legs of the Serve handle call")
    assert len(legs) == 2 and all(INTERVAL.match(row[2]) for row in legs), legs
    assert "## Where the Serve handle is behind" in page
    assert "Reproduce: `python bench/serve_hop.py --quick --no-write`" in page


def test_reindex_compares_the_pipeline_with_plain_scripts():
    """No --url: a reindex runs beside the catalog, not through the API."""
    page = run_quick("bench/reindex.py")
    stored = {row[0]: row for row in table(page, "## From stored embeddings")}
    assert set(stored) == {
        "busque reindex",
        "FAISS script, busque's index",
        "FAISS script, IndexFlatIP",
    }, page
    # busque's recompute runs a fresh Ray Data pool each round: --quick leaves it out (and
    # says so); tests/test_reindex.py runs it. The scripts' side runs.
    recompute = {row[0]: row for row in table(page, "## Recomputing embeddings")}
    assert set(recompute) == {"script, batches of 16", "script, one image at a time"}, page
    assert "Skipped: busque's recompute (Ray Data): --quick without --ray-address" in page
    for row in [*stored.values(), *recompute.values()]:
        assert_intervals(row, (1, 2))
        if row[0] in stored and row[0] != "busque reindex":
            assert_intervals(row, (3,))
            assert row[4] in VERDICTS, row
    assert all(row[3:5] == ["-", "-"] for row in recompute.values()), recompute
    assert "(busque picks flat)" in page  # 1,000 vectors: under busque's flat threshold
    assert "## Where busque is behind" in page
    assert "Reproduce: `python bench/reindex.py --quick --no-write`" in page


def test_ingest_io_counts_decodes_against_a_one_decode_script():
    page = run_quick("bench/ingest_io.py")
    rows = {row[2]: row for row in table(page, "# Ingest I/O")}
    assert set(rows) == {"busque", "script, one full decode"}, page
    # Exact counts: busque decodes at submission and once in the job, from one read of the
    # original; the script decodes once and reads nothing.
    assert rows["busque"][3] == "2" and rows["busque"][5] == "1", rows
    assert rows["script, one full decode"][3] == "1" and rows["script, one full decode"][5] == "0"
    assert_intervals(rows["busque"], (6, 7))
    assert rows["busque"][8] in VERDICTS
    assert "Reproduce: `python bench/ingest_io.py --quick --no-write`" in page


def test_vector_search_tunes_each_faiss_peer_and_scores_it_on_held_out_queries():
    page = run_quick("bench/vector_search.py")
    peers = {"faiss IndexFlatIP (exact)", "faiss IndexIVFFlat", "faiss IndexHNSWFlat"}
    for heading, busque_kind in (("## 24,000 vectors", "hnsw"), ("## 6,000 vectors", "flat")):
        rows = {row[0].split(" (a)")[0]: row for row in table(page, heading)}
        expected = (
            peers | {"busque default"} | ({"busque hnsw"} if busque_kind == "flat" else set())
        )
        assert set(rows) == expected, (heading, rows)
        assert f"-> {busque_kind}" in rows["busque default"][1], rows
        for name in peers:  # every comparison read off its interval, in words
            assert rows[name][4] in VERDICTS and rows[name][8] in VERDICTS, rows[name]
        # The exact scan is exact (its truth is numpy's, computed apart); so is busque's flat.
        assert float(rows["faiss IndexFlatIP (exact)"][2]) >= 0.998, rows
        if busque_kind == "flat":
            assert float(rows["busque default"][2]) >= 0.998, rows
        assert rows["faiss IndexIVFFlat"][1].startswith("nprobe ")
        assert rows["faiss IndexHNSWFlat"][1].startswith("efSearch ")
    assert "## Where busque is behind" in page
    assert "Reproduce: `python bench/vector_search.py --quick --no-write`" in page


def test_embed_runs_busque_against_the_models_readme_side_by_side():
    page = run_quick("bench/embed.py")
    rows = table(page, "busque's speedup is the paired")
    names = [row[1] for row in rows]
    assert names == ["busque", "README", "README + PyTorch's CPU inference recipe"], page
    assert all(row[0] == "2" for row in rows)
    assert {row[5] for row in rows[1:]} <= VERDICTS and rows[0][5] == "", rows
    for row in rows:  # median [low, high] of images/s, ordered
        median, low, high = map(float, INTERVAL.match(row[2]).groups())
        assert 0 < low <= median <= high, row
    assert "Preprocessing alone, ms per image: busque " in page
    assert "## Where busque is behind" in page
    assert "Reproduce: `python bench/embed.py --quick --no-write`" in page


def rows_under_header(page: str, header: str) -> list[list[str]]:
    """The rows (cells stripped) of the table whose header line starts with `header`."""
    lines = page.split("\n" + header, 1)[1].splitlines()[2:]  # past the header and its rule
    rows = []
    for line in lines:
        if not line.startswith("| "):
            break
        rows.append([cell.strip() for cell in line.split("|")[1:-1]])
    return rows


def test_image_compares_busque_jobs_with_the_bare_pipeline_turn_by_turn(app):
    """busque's part on the session's running app (its tiny Stable Diffusion, through a tenant
    of its own), the bare pipeline in-process on the same weights."""
    key = fresh_tenant_key(app, "bench-image")
    model = app.settings.images.model_path
    page = run_quick("bench/image.py", "--url", app.url, "--api-key", key, "--model-path", model)
    assert "busque: a running busque (--url)." in page
    cases = [row[0] for row in rows_under_header(page, "| case | per image s")]
    assert len(cases) == 5 and "**busque job, started_at -> finished_at**" in cases, page
    rows = rows_under_header(page, "| comparison | busque's speed")
    assert [row[0] for row in rows] == ["job (started -> finished)", "client wall (POST -> result)"]
    for row in rows:
        assert row[2] in VERDICTS, row
        median, low, high = map(float, INTERVAL.match(row[1]).groups())
        assert 0 < low <= median <= high, row
    floor = rows_under_header(page, "| floor | measured | met |")
    assert len(floor) == 1 and floor[0][2] in ("yes", "no"), page
    # The same seed gives the same picture through busque as in-process (same threads, kernels).
    assert "Same seed, same image: busque's PNG for seed 1 is byte-identical" in page, page
    assert "Reproduce: `python bench/image.py --quick --no-write --url" in page
    assert "--api-key KEY" in page  # the key is not on the page


def test_review_pages_times_the_gallery_against_a_fastapi_one():
    page = run_quick("bench/review_pages.py")
    pages = table(page, "## Each page's time")
    assert [row[0] for row in pages] == [
        "gallery, first page",
        "gallery, camera filter",
        "gallery, one year",
        "duplicates view",
        "duplicates view, after a resolve",
    ], page
    # The peer answered the same items (the script checks) and each page is read off its
    # paired interval.
    against = table(page, "## The gallery against the one a user would write")
    assert [row[0] for row in against] == [row[0] for row in pages[:3]], page
    assert {row[4] for row in against} <= VERDICTS, page
    assert "Reproduce: `python bench/review_pages.py --quick --no-write`" in page
