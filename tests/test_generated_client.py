"""A client generated from `/openapi.json` by openapi-python-client (what a user of another
codebase would do) works against the real server: typed models in, typed models out, for a job,
an ingest and a search."""

from __future__ import annotations

import importlib
import io
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from PIL import Image

GENERATOR = Path(sys.executable).parent / "openapi-python-client"


@pytest.fixture(scope="module")
def generated(app, tmp_path_factory):
    """The package `busque_api`, generated from the running server's document."""
    root = tmp_path_factory.mktemp("generated")
    spec = root / "openapi.json"
    spec.write_text(json.dumps(httpx.get(f"{app.url}/openapi.json").json()))
    config = root / "config.json"
    config.write_text(json.dumps({"post_hooks": []}))  # no formatter needed to import it
    subprocess.run(
        [GENERATOR, "generate", "--path", spec, "--output-path", root / "busque_api"]
        + ["--meta", "none", "--config", config],
        check=True,
        capture_output=True,
    )
    _import_unset(root / "busque_api")
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module("busque_api")
    finally:
        sys.path.remove(str(root))


def _import_unset(package: Path) -> None:
    """Work around the generator's open bug #1451: an operation with a required body of several
    content types (ingest, search: multipart or JSON) annotates `| Unset` without importing it."""
    for module in (package / "api").rglob("*.py"):
        code = module.read_text()
        if "| Unset" in code and "import Response, UNSET\n" in code:
            module.write_text(
                code.replace("import Response, UNSET\n", "import Response, UNSET, Unset\n")
            )


def test_a_job_through_the_generated_client(app, generated):
    from busque_api.api.jobs import create_job, get_job
    from busque_api.models import ErrorEnvelope, Job, JobCreate, JobCreateInput

    client = generated.AuthenticatedClient(base_url=app.url, token=app.admin_key)
    body = JobCreate(model="echo", input_=JobCreateInput.from_dict({"hello": "generated"}))
    created = create_job.sync_detailed(client=client, body=body, prefer="wait=20")
    assert created.status_code in (201, 202), created.content
    assert isinstance(created.parsed, Job) and created.parsed.model == "echo"
    done = get_job.sync(created.parsed.id, client=client, wait=20)
    assert isinstance(done, Job) and done.status == "succeeded", done
    assert done.result == {"echo": {"hello": "generated"}}
    missing = get_job.sync_detailed("job_missing", client=client)
    assert missing.status_code == 404 and isinstance(missing.parsed, ErrorEnvelope)
    assert missing.parsed.error.code == "job_not_found"


def test_an_ingest_and_a_search_through_the_generated_client(app, generated):
    from busque_api.api.media import ingest, search
    from busque_api.models import Accepted, SearchQuery, SearchResult

    client = generated.AuthenticatedClient(base_url=app.url, token=app.admin_key)
    photo = io.BytesIO()
    Image.effect_mandelbrot((96, 64), (-2.2, -1.1, 0.8, 1.1), 60).convert("RGB").save(photo, "PNG")
    # The JSON alternative of the body: the photo uploaded first (a presigned PUT).
    from busque_api.api.objects import create_upload
    from busque_api.models import UploadRequest

    ticket = create_upload.sync(client=client, body=UploadRequest(filename="m.png"))
    assert httpx.put(ticket.upload_url, content=photo.getvalue()).status_code in (200, 201, 204)
    from busque_api.models import IngestFields

    accepted = ingest.sync(
        client=client, body=IngestFields(object_key=ticket.object_key, collection="generated")
    )
    assert isinstance(accepted, Accepted), accepted
    from tests.conftest import wait_for

    with app.client() as c:
        assert wait_for(c, accepted.job_id)["status"] == "succeeded"
    found = search.sync(
        client=client, body=SearchQuery(media_id=accepted.media_id, collection="generated")
    )
    assert isinstance(found, SearchResult) and found.duration_ms >= 0
    again = search.sync(
        client=client, body=SearchQuery(phash=accepted.phash, collection="generated")
    )
    assert [m.media_id for m in again.matches][:1] == [accepted.media_id]
    assert again.matches[0].phash_distance == 0
