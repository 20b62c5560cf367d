"""The model catalog: which models exist, their schemas and defaults, where they run.

Later capabilities plug model kinds in with `registry.register(ModelSpec(...))`; extra modules
named in `Settings.model_modules` (test fixtures, site-specific models) add theirs through a
`register(registry, settings)` function.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from busque.config import Settings
from busque.models.base import Model


class EmptyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a param the model does not take is an error


@dataclass(frozen=True)
class ModelSpec:
    id: str
    kind: str
    backend: str
    factory: Callable[[Settings], Model]
    input_schema: type[BaseModel]
    deployment: str
    params_schema: type[BaseModel] = EmptyParams
    description: str = ""
    timeout_s: float | None = None
    max_attempts: int | None = None
    # Internal models run only as part of another endpoint (e.g. ingest), not via POST /v1/jobs.
    public: bool = True
    # Returns None when the model can run, else the reason it cannot (e.g. no weights).
    unavailable: Callable[[Settings], str | None] = field(default=lambda settings: None)
    # Checks a validated input against the world before the job is accepted (e.g. that an input
    # photo exists and is an image): (input, tenant_id, object store) -> None, or raises
    # ModelError, which the API answers with a 4xx.
    admit: Callable[[dict, str, Any], None] | None = None

    def validate(self, inputs: Any, params: Any) -> tuple[dict, dict]:
        """Check a job's input and parameters; raises pydantic's ValidationError."""
        checked_input = self.input_schema.model_validate(inputs)
        checked_params = self.params_schema.model_validate(params or {})
        return checked_input.model_dump(mode="json"), checked_params.model_dump(mode="json")

    def describe(self, settings: Settings) -> dict[str, Any]:
        resources = settings.deployment(self.deployment)
        reason = self.unavailable(settings)
        return {
            "id": self.id,
            "kind": self.kind,
            "backend": self.backend,
            "description": self.description,
            "deployment": self.deployment,
            "default_parameters": self.params_schema().model_dump(mode="json"),
            "parameter_schema": self.params_schema.model_json_schema(),
            "input_schema": self.input_schema.model_json_schema(),
            "resources": {"num_cpus": resources.num_cpus, "num_gpus": resources.num_gpus},
            "public": self.public,
            "available": reason is None,
            "unavailable_reason": reason,
        }


class ModelRegistry:
    def __init__(self) -> None:
        self._specs: dict[str, ModelSpec] = {}

    def register(self, spec: ModelSpec) -> None:
        if spec.id in self._specs:
            raise ValueError(f"model {spec.id!r} is registered twice")
        self._specs[spec.id] = spec

    def get(self, model_id: str) -> ModelSpec | None:
        return self._specs.get(model_id)

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(sorted(self._specs.values(), key=lambda s: s.id))

    def deployments(self) -> dict[str, list[ModelSpec]]:
        grouped: dict[str, list[ModelSpec]] = {}
        for spec in self:
            grouped.setdefault(spec.deployment, []).append(spec)
        return grouped


def _register_builtin(registry: ModelRegistry, settings: Settings) -> None:
    from busque.models.echo import Echo, EchoInput

    registry.register(
        ModelSpec(
            id="echo",
            kind="utility",
            backend="python",
            factory=lambda s: Echo(),
            input_schema=EchoInput,
            deployment="utility",
            description="Returns its input: checks the job pipeline end to end.",
            timeout_s=30,
        )
    )


class IngestJobInput(BaseModel):
    media_id: str
    original_key: str
    keys: dict[str, str]
    k: int = 10
    analyze_faces: bool = True  # False when the faces came with the photo (POST /v1/media/sync)


def _served_by_a_deployment(settings: Settings) -> Model:
    raise RuntimeError("this model runs in its own deployment, not in a ModelHost")


def _register_media(registry: ModelRegistry, settings: Settings) -> None:
    def embedder_missing(s: Settings) -> str | None:
        if s.embedder.backend == "clip":
            return None if s.embedder.model_path else "set embedder.model_path for clip"
        from busque.models.embedding.efficientnet import unavailable_reason

        return unavailable_reason()

    registry.register(
        ModelSpec(
            id="ingest",
            kind="image-ingest",
            backend=settings.embedder.backend,
            factory=_served_by_a_deployment,
            input_schema=IngestJobInput,
            deployment="ingest",
            description="Store, normalise, embed and index a photo; POST /v1/ingest runs it.",
            timeout_s=120,
            public=False,
            unavailable=embedder_missing,
        )
    )


def _register_faces(registry: ModelRegistry, settings: Settings) -> None:
    from busque.faces.analyze import FacesJobInput

    def faces_missing(s: Settings) -> str | None:
        from busque.models.faces import unavailable_reason

        return unavailable_reason(s.faces.backend)

    registry.register(
        ModelSpec(
            id="faces",
            kind="face-analysis",
            backend=settings.faces.backend,
            factory=_served_by_a_deployment,
            input_schema=FacesJobInput,
            deployment="ingest",
            description="Detect, embed and thumbnail the faces of media already in the catalog "
            "(by id or collection), and cluster them into people.",
            timeout_s=3600,
            unavailable=faces_missing,
        )
    )


def _register_generation(registry: ModelRegistry, settings: Settings) -> None:
    from busque.models.image.spec import register as register_images
    from busque.models.text.spec import register as register_text

    register_text(registry, settings)
    register_images(registry, settings)


def _register_pipelines(registry: ModelRegistry, settings: Settings) -> None:
    from pipelines.jobs import register

    register(registry, settings)


def build_registry(settings: Settings) -> ModelRegistry:
    registry = ModelRegistry()
    _register_builtin(registry, settings)
    _register_media(registry, settings)
    _register_faces(registry, settings)
    _register_generation(registry, settings)
    _register_pipelines(registry, settings)
    for module in settings.model_modules:
        importlib.import_module(module).register(registry, settings)
    return registry


__all__ = ["ModelRegistry", "ModelSpec", "ValidationError", "build_registry"]
