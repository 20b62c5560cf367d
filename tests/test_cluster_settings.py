"""What busque decides about the cluster it runs on, checked on one node: placement settings
reach Serve, the embedded parts are named, a replica without busque's Serve environment fails
loudly, and the pipelines find the Ray a `busque serve` runs. The multi-node behaviour (refusal,
placement on a node, folder reads) is in tests/test_cluster.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from pydantic import ValidationError

from busque.cluster import embedded_on_cluster
from busque.config import DeploymentSettings, Settings
from busque.media.sources import open_source
from busque.ray_start import SERVE_ENV, note_serving_ray, serving_ray_address
from busque.serve.app import build_app


def test_placement_and_autoscaling_reach_the_deployment(tmp_path):
    placed = {
        "num_cpus": 0.3,
        "num_gpus": 0.5,
        "memory": 2**30,
        "resources": {"model_node": 1},
        "accelerator_type": "A10G",
        "label_selector": {"zone": "eu-1"},
        "min_replicas": 1,
        "max_replicas": 3,
        "target_ongoing_requests": 7,
        "upscale_delay_s": 1,
        "downscale_delay_s": 5,
        "max_replicas_per_node": 1,
        "max_queued_requests": 50,
    }
    settings = Settings(home=tmp_path, serve={"gateway": placed})
    gateway = build_app(settings)._bound_deployment
    assert gateway.ray_actor_options == {
        "num_cpus": 0.3,
        "num_gpus": 0.5,
        "memory": 2**30,
        "resources": {"model_node": 1.0},
        "accelerator_type": "A10G",
        "label_selector": {"zone": "eu-1"},
    }
    assert gateway._replica_config.max_replicas_per_node == 1
    autoscaling = gateway._deployment_config.autoscaling_config
    assert (autoscaling.min_replicas, autoscaling.max_replicas) == (1, 3)
    assert autoscaling.target_ongoing_requests == 7
    assert (autoscaling.upscale_delay_s, autoscaling.downscale_delay_s) == (1, 5)
    # Past 50 requests queued at a proxy: 503 with Retry-After, not a wait without end.
    config = gateway._deployment_config
    assert config.max_queued_requests == 50
    assert (config.backpressure_config.status_code, config.backpressure_config.retry_after_s) == (
        503,
        5,
    )
    default = build_app(Settings(home=tmp_path))._bound_deployment._deployment_config
    assert default.max_queued_requests == Settings().serve.gateway.max_queued_requests == 1000


def test_a_misspelt_or_impossible_deployment_option_is_an_error():
    with pytest.raises(ValidationError, match="num_gpu"):
        DeploymentSettings(num_gpu=1)  # silently dropped before
    with pytest.raises(ValidationError, match="min_replicas 3 > max_replicas 2"):
        DeploymentSettings(min_replicas=3, max_replicas=2)
    assert DeploymentSettings(min_replicas=4).max_replicas == 4  # a fixed count, as before


def test_a_deployment_entry_changes_only_the_fields_it_names(tmp_path):
    """Setting a GPU for the text generator used to replace its defaults whole: it started
    with the service and never scaled to zero."""
    on_demand = Settings(home=tmp_path).deployment("textgen")
    assert (on_demand.min_replicas, on_demand.downscale_to_zero_delay_s) == (0, 600)
    settings = Settings(
        home=tmp_path,
        model_deployments={
            "textgen": {"num_gpus": 1},
            "imagegen": {"min_replicas": 2},
            "faceanalyzer": {"min_replicas": 1, "max_replicas": 3},
            "embedder": {"num_cpus": 2},
        },
    )
    textgen = settings.deployment("textgen")
    assert textgen.num_gpus == 1 and textgen.min_replicas == 0 and textgen.max_replicas == 1
    assert textgen.downscale_to_zero_delay_s == 600
    imagegen = settings.deployment("imagegen")  # `min_replicas` alone: that many, fixed
    assert (imagegen.min_replicas, imagegen.max_replicas) == (2, 2)
    faces = settings.deployment("faceanalyzer")  # its own num_cpus default kept
    assert (faces.min_replicas, faces.max_replicas, faces.num_cpus) == (1, 3, 0.5)
    embedder = settings.deployment("embedder")  # no busque default: Serve's fields' defaults
    assert (embedder.num_cpus, embedder.min_replicas) == (2, 1)
    with pytest.raises(ValidationError, match="min_replicas 2 > max_replicas 1"):
        Settings(
            home=tmp_path, model_deployments={"textgen": {"min_replicas": 2, "max_replicas": 1}}
        )


def test_embedded_parts_are_named(tmp_path):
    assert len(Settings(home=tmp_path).embedded_parts()) == 2
    shared = Settings(
        home=tmp_path,
        database={"url": "postgresql+psycopg://u@db/busque"},
        storage={"backend": "s3"},
    )
    assert shared.embedded_parts() == []


def test_one_node_may_run_embedded(ray_cluster, tmp_path):
    assert embedded_on_cluster(Settings(home=tmp_path)) is None


def test_a_wildcard_host_gives_a_public_url_clients_can_reach(tmp_path):
    for host in ("0.0.0.0", "::"):
        url = Settings(home=tmp_path, serve={"host": host}).serve.public_url
        assert "0.0.0.0" not in url and "[::]" not in url and url.endswith(":8000")
    given = Settings(home=tmp_path, serve={"host": "0.0.0.0", "public_url": "https://b.example/"})
    assert given.serve.public_url == "https://b.example"


@pytest.mark.parametrize(
    ("limit", "refused"),
    [
        (None, True),
        ("4194304", True),
        (SERVE_ENV["RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH"], False),
    ],
)
def test_a_replica_without_busques_serve_environment_refuses_to_start(limit, refused):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_SERVE_")}
    env |= {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}
    if limit is not None:
        env["RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH"] = limit
    code = "from busque.cluster import serve_environment_problems as p; print(p())"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert ("RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH" in out) is refused, out


def test_the_pipelines_find_the_ray_a_busque_serve_runs(tmp_path):
    settings = Settings(home=tmp_path)
    assert serving_ray_address(settings) is None
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        address = f"127.0.0.1:{listening.getsockname()[1]}"
        note_serving_ray(settings, address)
        assert serving_ray_address(settings) == address
    assert serving_ray_address(settings) is None  # noted, but nothing answers: a killed serve
    note_serving_ray(settings, None)
    assert not (tmp_path / "ray_address").exists()


def test_only_a_folder_library_is_read_on_this_machine(tmp_path):
    settings = Settings(home=tmp_path)
    assert open_source(tmp_path, settings).on_this_machine
    assert not open_source("s3://bucket/prefix", settings).on_this_machine
