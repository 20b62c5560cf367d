"""The one place where busque's deployments are composed (`.bind()`), for `busque serve`,
`serve run serve_config.yaml` and the tests alike. What to compose comes from the composition
root (busque/runtime.py): the job-kind catalog names the model deployments."""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from busque.api.errors import RETRY_AFTER_S
from busque.cluster import refuse_embedded_on_cluster
from busque.config import DeploymentSettings, Settings
from busque.models.text.weights import unavailable_reason as unavailable_text
from busque.models.text_embedding.minilm import MODEL_ID as TEXT_EMBEDDING_MODEL
from busque.runtime import Runtime
from busque.serve.dispatcher import DispatcherDeployment
from busque.serve.embedder import Embedder
from busque.serve.faces import FaceAnalyzer
from busque.serve.gateway import Gateway
from busque.serve.ingest import IngestWorker
from busque.serve.matcher import Matcher
from busque.serve.model_host import ModelHost
from busque.serve.text import TextGeneratorDeployment
from busque.serve.text_embedder import TextEmbedderDeployment


def _options(name: str, resources: DeploymentSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "name": name,
        "ray_actor_options": resources.actor_options(),
        "max_ongoing_requests": resources.max_ongoing_requests,
        # Access logs for HTTP requests only: the Gateway's. Internal handle calls (several per
        # job) would each write a line; busque logs what happens to a job itself.
        "logging_config": {"encoding": "JSON", "enable_access_log": name == "Gateway"},
    }
    if resources.max_queued_requests is not None:
        options["max_queued_requests"] = resources.max_queued_requests
        options["backpressure_config"] = {"status_code": 503, "retry_after_s": RETRY_AFTER_S}
    if resources.max_replicas_per_node is not None:
        options["max_replicas_per_node"] = resources.max_replicas_per_node
    if resources.max_replicas > resources.min_replicas:
        autoscaling: dict[str, Any] = {
            "min_replicas": resources.min_replicas,
            "max_replicas": resources.max_replicas,
            "initial_replicas": resources.min_replicas,
        }
        for option in (
            "target_ongoing_requests",
            "upscale_delay_s",
            "downscale_delay_s",
            "downscale_to_zero_delay_s",
            "look_back_period_s",
        ):
            if getattr(resources, option) is not None:
                autoscaling[option] = getattr(resources, option)
        options["autoscaling_config"] = autoscaling
    else:
        options["num_replicas"] = resources.min_replicas
    return options


def build_app(settings: Settings) -> Application:
    settings.ensure_secrets()
    runtime = Runtime(settings)
    bound = settings.model_dump(mode="json")

    def deployment(cls, name: str):
        return cls.options(**_options(name, settings.deployment(name.lower())))

    embedder = deployment(Embedder, "Embedder").bind(bound)
    matcher = deployment(Matcher, "Matcher").bind(bound, embedder)
    faces = None
    if runtime.faces_available():
        faces = deployment(FaceAnalyzer, "FaceAnalyzer").bind(bound)
    # Deployments with their own class; every other model runs in a generic ModelHost.
    special = {"ingest": deployment(IngestWorker, "Ingest").bind(bound, embedder, matcher, faces)}
    text = None
    if unavailable_text(settings) is None:
        text = TextGeneratorDeployment.options(
            **_options("TextGenerator", settings.deployment("textgen"))
        ).bind(bound)
        special["textgen"] = text
    text_embedder = None
    text_embedding = runtime.registry.get(TEXT_EMBEDDING_MODEL)
    if text_embedding is not None and text_embedding.unavailable(settings) is None:
        text_embedder = TextEmbedderDeployment.options(
            **_options("TextEmbedder", settings.deployment(text_embedding.deployment))
        ).bind(bound, text_embedding.id)
        special[text_embedding.deployment] = text_embedder
    # The image embedder's catalog entry names the Embedder (it runs no jobs of its own).
    special["embedder"] = embedder
    # Every model deployment exists, so a Serve config's `deployments:` may name each one; the
    # generators start a replica only on first use (DEFAULT_DEPLOYMENTS), and a model that is
    # unavailable is never used (its jobs are refused at creation: 422 model_unavailable).
    model_handles = {
        name: special.get(name)
        or ModelHost.options(**_options(name, settings.deployment(name))).bind(bound, name)
        for name in runtime.registry.deployments()
    }
    dispatcher = DispatcherDeployment.options(
        **_options("Dispatcher", settings.serve.dispatcher)
    ).bind(bound, model_handles)
    gateway = Gateway.options(**_options("Gateway", settings.serve.gateway))
    return gateway.bind(bound, dispatcher, embedder, matcher, faces, text, text_embedder)


def app_builder(args: dict[str, Any]) -> Application:
    """For `serve run serve_config.yaml`: settings from the environment, overridden by args."""
    settings = Settings(**args)
    refuse_embedded_on_cluster(settings)  # before anything is written on this node
    Runtime(settings).migrate()
    return build_app(settings)
