"""The TCC orchestrator's clients against busque (../shared/seeds/003_*.txt), through the real
server: the model catalog loaded from a JSON file with `busque models load` (idempotent), an
upload ticket, the PUT to its URL, a job naming the upload as `input_params.image_path` (its
input artifact recorded with the job, none when the job is refused), polling until SUCCEEDED
with progress_percent, and the presigned download (400 before the job ends, 404 without a
file); another tenant's job is a 404, no key a 401."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import wait_for
from tests.face_photos import astronaut, encode

PRESETS = [
    {
        "id": "sf3d-v1",
        "job_kind": "shap-e-img2img",
        "default_params": {"steps": 2, "guidance": 3.0},
        "inputs": {"image_path": "image_key"},
        "description": "image-to-3D (Shap-E standing in for Stable Fast 3D)",
    },
    {"id": "slow-gen", "job_kind": "sleep", "default_params": {"seconds": 2.5}},
]


def models_cli(app, *args: str) -> subprocess.CompletedProcess:
    """`busque models ...` on the session's database, as an operator would run it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUSQUE_")}
    env["BUSQUE_HOME"] = str(app.settings.home)
    env["BUSQUE_MODEL_MODULES"] = json.dumps(app.settings.model_modules)
    return subprocess.run(
        [sys.executable, "-m", "busque.cli", "models", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def presets(app, tmp_path_factory):
    path = tmp_path_factory.mktemp("presets") / "ai_models.json"
    path.write_text(json.dumps(PRESETS))
    first = models_cli(app, "load", str(path))
    assert first.returncode == 0, first.stderr
    again = models_cli(app, "load", str(path))  # idempotent: updated, not duplicated
    assert again.returncode == 0 and "0 presets created, 2 updated" in again.stdout, again
    listed = json.loads(models_cli(app, "list").stdout)
    assert [p["id"] for p in listed] == ["sf3d-v1", "slow-gen"]
    return path


@pytest.fixture
def tcc(app):
    with httpx.Client(base_url=app.url, headers={"x-api-key": app.admin_key}, timeout=60) as c:
        yield c


def ticket_and_upload(tcc, data: bytes) -> str:
    ticket = tcc.post(
        "/api/v1/jobs/upload-ticket", json={"filename": "textura.jpg", "content_type": "image/jpeg"}
    )
    assert ticket.status_code == 200, ticket.text
    assert set(ticket.json()) == {"upload_url", "object_name"}
    put = httpx.put(
        ticket.json()["upload_url"], content=data, headers={"Content-Type": "image/jpeg"}
    )
    assert put.status_code in (200, 201, 204), put.text
    return ticket.json()["object_name"]


def test_upload_create_poll_and_download(tcc, presets):
    object_name = ticket_and_upload(tcc, encode(astronaut().resize((96, 96))))
    created = tcc.post(
        "/api/v1/jobs/",
        json={"model_id": "sf3d-v1", "input_params": {"image_path": object_name, "seed": 1}},
    )
    assert created.status_code == 201, created.text
    job = created.json()
    assert set(job) == {"id", "model_id", "status", "created_at", "input_params"}
    assert job["model_id"] == "sf3d-v1" and job["status"] == "QUEUED"
    assert job["input_params"]["image_path"] == object_name
    assert job["input_params"]["guidance"] == 3.0  # the preset's default
    assert "T" in job["created_at"] and not job["created_at"].endswith("Z")
    seen = []
    deadline = time.monotonic() + 120
    while (status := tcc.get(f"/api/v1/jobs/{job['id']}").json())["status"] != "SUCCEEDED":
        seen.append((status["status"], status["progress_percent"]))
        assert status["status"] in ("QUEUED", "RUNNING"), status
        assert time.monotonic() < deadline, seen
        time.sleep(0.2)
    assert status["progress_percent"] == 100
    assert status["started_at"] and status["completed_at"] >= status["started_at"]
    assert set(status) == {
        "id", "status", "progress_percent", "created_at", "started_at", "completed_at",
        "model_id", "input_params",
    }  # fmt: skip
    download = tcc.get(f"/api/v1/jobs/{job['id']}/download")
    assert download.status_code == 200, download.text
    assert download.json()["expires_in"] == 3600
    mesh = httpx.get(download.json()["download_url"], timeout=30)
    assert mesh.status_code == 200 and mesh.content.startswith(b"glTF")  # the job's mesh.glb
    # busque recorded the upload as the job's input artifact.
    artifacts = tcc.get(f"/v1/jobs/{job['id']}/artifacts").json()["data"]
    assert {a["name"]: a["object_key"] for a in artifacts}["input"] == object_name


def test_download_before_the_end_is_400_and_without_a_file_404(tcc, presets):
    job = tcc.post("/api/v1/jobs/", json={"model_id": "slow-gen", "input_params": {}}).json()
    early = tcc.get(f"/api/v1/jobs/{job['id']}/download")
    assert early.status_code == 400 and early.json()["detail"], early.text
    wait_for(tcc, job["id"])
    assert tcc.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "SUCCEEDED"
    none = tcc.get(f"/api/v1/jobs/{job['id']}/download")
    assert none.status_code == 404 and none.json()["detail"], none.text


def test_a_refused_job_leaves_no_job_and_no_artifact(tcc, presets, app, other_tenant_key):
    object_name = ticket_and_upload(tcc, encode(astronaut().resize((96, 96))))
    before = tcc.get("/v1/jobs", params={"label": "door=tcc"}).json()["data"]
    refused = tcc.post(
        "/api/v1/jobs/",
        json={"model_id": "sf3d-v1", "input_params": {"image_path": object_name, "steps": "x"}},
    )
    assert refused.status_code == 422, refused.text
    assert tcc.get("/v1/jobs", params={"label": "door=tcc"}).json()["data"] == before
    unknown = tcc.post("/api/v1/jobs/", json={"model_id": "nope", "input_params": {}})
    assert unknown.status_code == 404 and unknown.json()["detail"]
    for bad, status in (("../etc/passwd", 400), ("/abs/x.jpg", 400), (f"{object_name}-x", 404)):
        answer = tcc.post(
            "/api/v1/jobs/", json={"model_id": "sf3d-v1", "input_params": {"image_path": bad}}
        )
        assert answer.status_code == status, (bad, answer.text)
    # Another tenant's upload or job: not found, as if it did not exist.
    with httpx.Client(
        base_url=app.url, headers={"x-api-key": other_tenant_key}, timeout=60
    ) as other:
        theirs = other.post(
            "/api/v1/jobs/",
            json={"model_id": "sf3d-v1", "input_params": {"image_path": object_name}},
        )
        assert theirs.status_code == 404, theirs.text
        mine = tcc.post("/api/v1/jobs/", json={"model_id": "slow-gen", "input_params": {}})
        assert other.get(f"/api/v1/jobs/{mine.json()['id']}").status_code == 404
        assert other.get(f"/api/v1/jobs/{mine.json()['id']}/download").status_code == 404
    with httpx.Client(base_url=app.url, timeout=60) as keyless:
        assert keyless.get(f"/api/v1/jobs/{mine.json()['id']}").status_code == 401
        assert keyless.post("/api/v1/jobs/", json={"model_id": "x"}).status_code == 401


def test_loading_changes_defaults_without_code(app, tcc, presets, tmp_path):
    changed = [dict(PRESETS[1], default_params={"seconds": 0.1})]
    path = tmp_path / "ai_models.json"
    path.write_text(json.dumps(changed))
    assert models_cli(app, "load", str(path)).returncode == 0
    job = tcc.post("/api/v1/jobs/", json={"model_id": "slow-gen", "input_params": {}}).json()
    assert job["input_params"]["seconds"] == 0.1
    path.write_text(json.dumps([{"id": "bad", "job_kind": "no-such-kind"}]))
    refused = models_cli(app, "load", str(path))
    assert refused.returncode == 2 and "no job kind no-such-kind" in refused.stderr
    path.write_text("[{")
    assert models_cli(app, "load", str(path)).returncode == 2
    presets.write_text(json.dumps(PRESETS))  # as the module's other tests expect
    assert models_cli(app, "load", str(presets)).returncode == 0
