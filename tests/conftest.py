"""Shared fixtures: real servers (SeaweedFS, PostgreSQL), one Ray cluster and one busque Serve
application per test session, reached over HTTP like any client would."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from busque.ray_start import SMALL_LOCAL_RAY, serve_environment, start_local_ray
from busque.testing import answers
from busque.testing.app import start_app, wait_for  # noqa: F401 - tests import wait_for from here
from busque.testing.servers import free_port, postgres, postgres_available, seaweedfs

pytest_plugins = ["tests.browser"]  # the `browser` fixture (a real headless Chromium)

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
serve_environment()  # the same Serve settings `busque serve` runs with
answers.LOG.enabled = True  # tests/test_openapi_contract.py checks them against /openapi.json


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.get_closest_marker("after_suite") is not None)  # stable


TEXT_MODEL_CACHE = Path.home() / ".cache" / "busque-tests" / "models"

FAST_JOBS = {
    "lease_s": 2.0,
    "heartbeat_s": 0.4,
    "retry_backoff_s": 0.2,
    "retry_backoff_max_s": 1.0,
    "poll_s": 0.2,
    "max_wait_s": 30,
}

QUOTA_TENANTS = {
    "rate-limited": {"requests_per_s": 2, "burst": 6},
    "upload-limited": {"bodies": 2},
    "job-limited": {"queued_jobs": 3, "running_jobs": 1},
    "one-at-a-time": {"running_jobs": 1},  # tests/test_door_avatarforge.py
    "client-retries": {"requests_per_s": 4, "burst": 2},  # tests/test_client.py
}


@pytest.fixture(scope="session")
def seaweedfs_server(tmp_path_factory):
    """A real SeaweedFS S3 server for the session: dict(endpoint, access_key, secret_key)."""
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory):
    """A real PostgreSQL server. CI sets BUSQUE_REQUIRE_POSTGRES=1: then it is never skipped."""
    if not postgres_available():
        if os.environ.get("BUSQUE_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL server binaries are required (BUSQUE_REQUIRE_POSTGRES=1)")
        pytest.skip("PostgreSQL server binaries not installed")
    with postgres(tmp_path_factory.mktemp("postgres")) as url:
        yield url


@pytest.fixture(scope="session")
def ray_cluster():
    import ray

    start_local_ray(**SMALL_LOCAL_RAY)
    yield ray
    ray.shutdown()


def test_settings(home, **overrides):
    from busque.config import Settings

    # min_replicas 1: warm from the start, textgen and utility too (on demand by default).
    fixtures = {"num_cpus": 0.1, "max_ongoing_requests": 200, "min_replicas": 1}
    values = {
        "home": home,
        "jobs": FAST_JOBS,
        "webhooks": {"allow_networks": ["127.0.0.0/8"], "backoff_s": 0.2, "backoff_max_s": 1},
        "events": {"poll_s": 0.02, "keepalive_s": 2, "max_streams_per_tenant": 20},
        "model_modules": ["tests.fixture_models"],
        # The folders `backfill` jobs may read (tests/test_backfill_job.py).
        "pipelines": {"backfill_sources": [str(Path(home) / "libraries")]},
        # Tests send requests as fast as they can; tests/test_quotas.py's tenants have limits.
        "quotas": {"requests_per_s": 0, "tenants": QUOTA_TENANTS},
        # BusquePet's shared storage (tests/test_door_busquepet.py), as its Go API names it.
        "doors": {
            "busquepet_storage_dir": str(Path(home) / "shared-storage"),
            "busquepet_sent_root": "/workspace/shared",
            "busquepet_tenant": "default",
            # AvatarForge's photos become tiny avatar jobs (tests/test_door_avatarforge.py).
            "avatarforge_input": {"style": "anime", "steps": 2, "width": 64, "height": 64},
        },
        "model_deployments": {
            **{
                name: fixtures
                for name in (
                    "fixtures",
                    "crashy",
                    "utility",
                    "embedder",
                    "matcher",
                    "ingest",
                    "textgen",
                )
            },
            # Scales to zero a few seconds after its last call (tests/test_faces_api.py).
            "faceanalyzer": {
                "num_cpus": 0.1,
                "min_replicas": 0,
                "max_replicas": 1,
                "max_ongoing_requests": 4,
                "downscale_to_zero_delay_s": 2,
                "look_back_period_s": 10.5,  # Serve's 30 s average keeps the last call
            },
        },
        # Above 4 MiB, gRPC's default message cap between replicas (test_ingest.py).
        "media": {"max_upload_bytes": 6 * 2**20, "max_pixels": 40_000_000},
        "index": {"sync_s": 0.2},
        # The bundled SmolLM2 is converted to safetensors once per machine, not per session.
        "text": {"cache_dir": TEXT_MODEL_CACHE, "max_batch": 4},
        "serve": {
            "port": free_port(),
            "grpc_port": free_port(),
            "max_body_bytes": 8 * 2**20,
            "body_timeout_s": 3,
            "cors_origins": ["http://allowed.example"],
            "gateway": {"num_cpus": 0.1, "max_ongoing_requests": 1000},
            # Two dispatchers, so every test also checks that they never run a job twice.
            "dispatcher": {
                "num_cpus": 0.1,
                "max_ongoing_requests": 1000,
                "min_replicas": 2,
                "max_replicas": 2,
            },
        },
    } | overrides
    return Settings(**values)


@pytest.fixture(scope="session")
def app(ray_cluster, tmp_path_factory):
    from ray import serve

    from busque.testing.tiny_models import build_tiny_shap_e, build_tiny_stable_diffusion

    tiny_sd = build_tiny_stable_diffusion(tmp_path_factory.mktemp("tiny-sd"))
    shapes = {
        "text_model_path": str(build_tiny_shap_e(tmp_path_factory.mktemp("tiny-shap-e"))),
        "image_model_path": str(
            build_tiny_shap_e(tmp_path_factory.mktemp("tiny-shap-e-img2img"), image=True)
        ),
        "grid_size": 24,
        "preview_size": 16,
    }
    settings = test_settings(
        tmp_path_factory.mktemp("busque"), images={"model_path": str(tiny_sd)}, shapes=shapes
    )
    yield start_app(settings)
    serve.delete(settings.serve.app_name)


@pytest.fixture
def client(app):
    with app.client() as c:
        yield c


@pytest.fixture(scope="session")
def other_tenant_key(app):
    from busque.cli import _key_store

    return _key_store(app.settings).create("other-tenant", "tests").key
