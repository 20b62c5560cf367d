"""Faults through the real Serve app: killed replicas, hung models, a restart of the whole app."""

from __future__ import annotations

import json
import os
import signal
import time

import httpx

from tests.conftest import start_app, wait_for
from tests.test_jobs_api import submit


def first_output(client: httpx.Client, job_id: str, timeout: float = 30) -> dict:
    """Read the job's SSE stream until its first job.output event."""
    with client.stream("GET", f"/v1/jobs/{job_id}/events", timeout=timeout) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                if event["type"] == "job.output":
                    return event["data"]["chunk"]
    raise AssertionError("the job ended without output")


def status_events(client: httpx.Client, job_id: str) -> list[dict]:
    text = client.get(f"/v1/jobs/{job_id}/events").text
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    return [e for e in events if e["type"] == "job.status"]


def test_kill_9_of_the_replica_running_a_job(client):
    job = submit(client, "sleep", {"seconds": 2})
    chunk = first_output(client, job["id"])
    assert chunk["attempt"] == 1
    os.kill(chunk["pid"], signal.SIGKILL)
    done = wait_for(client, job["id"], timeout=90)
    assert done["status"] == "succeeded", done
    assert done["attempts"] >= 2
    assert done["result"]["pid"] != chunk["pid"]  # finished on a new replica process
    retried = [e for e in status_events(client, job["id"]) if e["data"].get("error")]
    assert retried and retried[0]["data"]["error"]["code"] == "worker_died"


def test_a_model_that_kills_its_own_replica_is_retried(client):
    job = submit(client, "crash", {"crash_attempts": 1})
    done = wait_for(client, job["id"], timeout=90)
    assert done["status"] == "succeeded", done
    assert done["result"] == {"survived_on_attempt": 2}


def test_a_hung_model_times_out_through_its_lease(client):
    job = submit(client, "hang")
    done = wait_for(client, job["id"], timeout=60)
    assert done["status"] == "failed"
    assert done["error"]["code"] == "timeout"
    assert done["attempts"] == done["max_attempts"] == 2
    statuses = [e["data"]["status"] for e in status_events(client, job["id"])]
    assert statuses == ["queued", "running", "queued", "running", "failed"]


def test_restart_of_the_whole_app_loses_and_repeats_nothing(app, client, tmp_path):
    from ray import serve

    markers = tmp_path / "markers"
    markers.mkdir()
    ids = [
        submit(client, "sleep", {"seconds": 0.2 + (i % 10) * 0.5, "marker_dir": str(markers)})["id"]
        for i in range(50)
    ]
    time.sleep(1.5)  # the short ones are done, the rest queued or running
    serve.delete(app.settings.serve.app_name)
    from busque.runtime import Runtime

    store = Runtime(app.settings).jobs
    try:
        before = {job_id: store.get(job_id)["state"] for job_id in ids}
        assert "succeeded" in before.values()
        assert any(state != "succeeded" for state in before.values())
    finally:  # whatever this test finds, the tests after it need the app back
        start_app(app.settings)
    for job_id in ids:
        assert wait_for(client, job_id, timeout=120)["status"] == "succeeded"
    for job_id in ids:
        events = store.events(job_id=job_id)
        assert [e["type"] for e in events].count("job.result") == 1, job_id
        terminal = [
            e
            for e in events
            if e["type"] == "job.status"
            and e["data"]["status"] in ("succeeded", "failed", "canceled")
        ]
        assert len(terminal) == 1, job_id
        final_attempt = store.get(job_id)["attempt"]
        ran = sorted(int(p.suffix[1:]) for p in markers.glob(f"{job_id}.*"))
        # at least once: the last attempt ran; nothing ran after the job had succeeded
        assert ran and ran[-1] == final_attempt, (job_id, ran, final_attempt)
        if before[job_id] == "succeeded":
            assert ran == [final_attempt]
