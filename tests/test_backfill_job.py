"""Backfill as a job through the real server: `POST /v1/jobs {"model": "backfill"}` on a folder
inside pipelines.backfill_sources, with a job.progress event per file inspected and per batch
catalogued, exclusion patterns (the settings' and the job's), the report as its result and the
tenant's media searchable; a cancel stops it and a rerun finishes what is left; sources outside
the configured roots refused at submission."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import skimage.data
from PIL import Image

from tests.conftest import wait_for
from tests.test_backfill import add_generated, jpeg
from tests.test_events import read_job_sse
from tests.test_jobs_api import assert_error


def library(app, name: str) -> Path:
    root = Path(app.settings.pipelines.backfill_sources[0]) / name
    root.mkdir(parents=True)
    return root


def backfill_job(client, source: Path | str, **inputs) -> dict:
    created = client.post(
        "/v1/jobs", json={"model": "backfill", "input": {"source": str(source), **inputs}}
    )
    assert created.status_code == 202, created.text
    return created.json()


def media_ids(client, collection: str) -> set[str]:
    page = client.get("/v1/media", params={"collection": collection, "limit": 200}).json()
    return {m["id"] for m in page["data"]}


def test_a_backfill_job_reports_progress_and_skips_excluded_paths(app, client):
    root = library(app, "family")
    for name in ("astronaut", "chelsea", "coffee"):
        image = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        (root / f"{name}.jpg").write_bytes(jpeg(image))
    (root / "copies").mkdir()
    shutil.copy(root / "chelsea.jpg", root / "copies" / "chelsea (1).jpg")  # an exact copy
    (root / "@eaDir" / "chelsea.jpg").mkdir(parents=True)  # a NAS's thumbnails: excluded
    shutil.copy(root / "coffee.jpg", root / "@eaDir" / "chelsea.jpg" / "SYNOPHOTO_THUMB.jpg")
    (root / "upload.tmp").write_bytes(b"half a file")  # the settings' *.tmp
    shutil.copy(root / "astronaut.jpg", root / "astronaut.skip.jpg")  # the job's own pattern
    job = backfill_job(client, root, collection="bf-job", exclude=["*.skip.jpg"])
    events = read_job_sse(client, job["id"], timeout=240)
    progress = [e["data"]["data"]["message"] for e in events if e["event"] == "job.progress"]
    assert "inspect 4/4" in progress and progress[-1] == "upload 3/3", progress
    (result,) = [e["data"]["data"]["result"] for e in events if e["event"] == "job.result"]
    assert result["excluded"] == 3 and result["uploaded"] == 3 and result["failed"] == 0
    assert result["exact_duplicate_groups"] == [["chelsea.jpg", "copies/chelsea (1).jpg"]]
    assert result["exact_duplicate_groups_total"] == 1
    assert len(media_ids(client, "bf-job")) == 3


def test_a_canceled_backfill_stops_and_a_rerun_finishes_it(app, client):
    root = library(app, "generated")
    add_generated(root, 30)
    job = backfill_job(client, root, collection="bf-cancel", faces=False)
    with client.stream("GET", f"/v1/jobs/{job['id']}/events") as stream:
        for line in stream.iter_lines():
            if line.startswith("event: job.progress"):
                break
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202  # running
    assert wait_for(client, job["id"], 120)["status"] == "canceled"
    stopped = len(media_ids(client, "bf-cancel"))
    assert stopped < 30
    again = wait_for(client, backfill_job(client, root, collection="bf-cancel")["id"], 240)
    assert again["status"] == "succeeded", again
    assert len(media_ids(client, "bf-cancel")) == 30
    assert again["result"]["uploaded"] == 30 - stopped


@pytest.mark.parametrize(
    "source, code",
    [
        ("/etc", "source_not_allowed"),
        ("relative/folder", "source_not_allowed"),
        ("{root}/../../outside", "source_not_allowed"),
        ("{root}/no-such-folder", "source_not_found"),
        ("s3://any-bucket/photos", "source_not_allowed"),
    ],
)
def test_sources_outside_the_configured_roots_are_refused(app, client, source, code):
    root = app.settings.pipelines.backfill_sources[0]
    Path(root).mkdir(parents=True, exist_ok=True)
    response = client.post(
        "/v1/jobs", json={"model": "backfill", "input": {"source": source.format(root=root)}}
    )
    assert_error(response, 422, code)


def test_exclusion_patterns_match_a_part_or_the_whole_path():
    from pipelines.backfill.plan import excluded

    patterns = ["@eaDir", ".thumbnails", "*.tmp", "raw/*.dng"]
    for path in ("@eaDir/x.jpg", "a/@eaDir/b/x.jpg", "a/.thumbnails/x.png", "a/b.tmp", "raw/x.dng"):
        assert excluded(path, patterns), path
    for path in ("a/eaDir/x.jpg", "a/b.tmp.jpg", "a/raw/x.dng.jpg", "x.TMP"):
        assert not excluded(path, patterns), path


def test_allowed_sources_stay_inside_their_roots(tmp_path):
    from pipelines.backfill.plan import allowed_source

    inside = tmp_path / "libs" / "a"
    inside.mkdir(parents=True)
    (tmp_path / "libs" / "link").symlink_to(tmp_path)  # a link out of the root
    roots = [str(tmp_path / "libs"), "s3://photos/family"]
    assert allowed_source(str(inside), roots)
    assert not allowed_source(str(tmp_path / "libs" / "link"), roots)
    assert not allowed_source(str(tmp_path), roots)
    assert allowed_source("s3://photos/family/2019", roots)
    assert not allowed_source("s3://photos/family-other", roots)
    assert not allowed_source("s3://photos/family/../x", roots)
