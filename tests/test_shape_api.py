"""3D generation through the real app: tiny random Shap-E pipelines the tests build (no 3D weights
exist offline; diffusers loads them as it loads openai/shap-e), run end to end: a job -> a
job.progress event per denoising step -> a coloured, closed mesh (GLB and PLY, read back with
trimesh) and a preview PNG; text-to-3D and image-to-3D; bad input refused at submission; the
kinds listed unavailable without configured weights."""

from __future__ import annotations

import io

import trimesh
from PIL import Image

from busque.config import Settings
from busque.runtime import build_job_kinds
from tests.conftest import wait_for
from tests.face_photos import astronaut, encode
from tests.test_events import read_job_sse
from tests.test_image_api import artifact_bytes, upload
from tests.test_jobs_api import assert_error


def test_text_to_3d_reports_each_step_and_stores_a_closed_coloured_mesh(client, app):
    created = client.post(
        "/v1/jobs", json={"model": "shap-e", "input": {"prompt": "a red chair", "steps": 2}}
    )
    assert created.status_code == 202, created.text
    events = read_job_sse(client, created.json()["id"], timeout=120)
    progress = [e["data"]["data"] for e in events if e["event"] == "job.progress"]
    steps = [p["message"] for p in progress if p["message"].startswith("step")]
    # Heun takes 2 x steps - 1 evaluations: each is reported.
    assert steps == ["step 1/3", "step 2/3", "step 3/3"], progress
    assert round(progress[-1]["progress"]) == 100
    (result,) = [e["data"]["data"]["result"] for e in events if e["event"] == "job.result"]
    assert result["mode"] == "text-to-3d" and result["mesh"]["watertight"] is True
    files = artifact_bytes(client, created.json()["id"])
    assert set(files) == {"mesh.glb", "mesh.ply", "preview.png"}
    glb = trimesh.load(io.BytesIO(files["mesh.glb"]), file_type="glb", force="mesh")
    assert len(glb.vertices) == result["mesh"]["vertices"] > 0 and glb.is_watertight
    assert glb.volume > 0  # faces wound outwards
    ply = trimesh.load(io.BytesIO(files["mesh.ply"]), file_type="ply")
    assert len(ply.faces) == result["mesh"]["faces"]
    assert len({tuple(c) for c in ply.visual.vertex_colors[:, :3]}) > 1  # coloured, not flat
    size = app.settings.shapes.preview_size
    assert Image.open(io.BytesIO(files["preview.png"])).size == (2 * size, 2 * size)


def test_image_to_3d_and_the_same_seed_gives_the_same_mesh(client):
    key = upload(client, encode(astronaut().resize((80, 80)), quality=90))
    meshes = []
    for seed in (5, 5, 6):
        job = client.post(
            "/v1/jobs",
            json={"model": "shap-e-img2img", "input": {"image_key": key, "steps": 2, "seed": seed}},
        ).json()
        done = wait_for(client, job["id"], 120)
        assert done["status"] == "succeeded", done
        assert done["result"]["mode"] == "image-to-3d" and done["result"]["seed"] == seed
        meshes.append(artifact_bytes(client, job["id"])["mesh.ply"])
    assert meshes[0] == meshes[1] != meshes[2]


def test_bad_3d_input_is_refused_at_submission(client, other_tenant_key, app):
    for inputs, status, code in (
        ({"prompt": "x", "steps": 1000}, 422, "invalid_input"),
        ({"prompt": ""}, 422, "invalid_input"),
        ({"prompt": "x", "style": "anime"}, 422, "invalid_input"),
    ):
        response = client.post("/v1/jobs", json={"model": "shap-e", "input": inputs})
        assert_error(response, status, code)
    with app.client(other_tenant_key) as other:
        theirs = upload(other, encode(astronaut().resize((64, 64))))
    for key, status, code in (
        (theirs, 404, "object_not_found"),
        ("default/uploads/nope/x.jpg", 404, "object_not_found"),
    ):
        response = client.post(
            "/v1/jobs", json={"model": "shap-e-img2img", "input": {"image_key": key}}
        )
        assert_error(response, status, code)
    not_an_image = upload(client, b"plain text, not a photo")
    response = client.post(
        "/v1/jobs", json={"model": "shap-e-img2img", "input": {"image_key": not_an_image}}
    )
    assert response.status_code == 422, response.text


def test_the_3d_kinds_are_listed_and_unavailable_without_weights(client, tmp_path):
    listed = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    for model in ("shap-e", "shap-e-img2img"):
        assert listed[model]["kind"] == "3d-generation" and listed[model]["available"] is True
    bare = Settings(home=tmp_path)
    reasons = {spec.id: spec.unavailable(bare) for spec in build_job_kinds(bare)}
    assert "BUSQUE_SHAPES__TEXT_MODEL_PATH" in reasons["shap-e"]
    assert "BUSQUE_SHAPES__IMAGE_MODEL_PATH" in reasons["shap-e-img2img"]
    missing = Settings(home=tmp_path, shapes={"text_model_path": str(tmp_path / "none")})
    assert "does not exist" in build_job_kinds(missing).get("shap-e").unavailable(missing)
