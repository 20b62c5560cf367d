"""The job-kind catalog: which models exist, their schemas and defaults, where they run.

A container only: it imports none of the features. Each feature exports
`register(registry, settings)`, and the composition root (busque/runtime.py) calls them from its
one list of plug-ins (plus the modules named in `Settings.model_modules`: test fixtures,
site-specific models).
"""

from __future__ import annotations

import json
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
    # Builds the model from the composition root's Runtime (settings, stores); called once per
    # replica that hosts it.
    factory: Callable[[Any], Model]
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
        """Check a job's input and parameters; raises pydantic's ValidationError. Strictly, as
        JSON: "5" is not a number, true is not 1 (a list still fills a tuple)."""
        checked_input = self.input_schema.model_validate_json(json.dumps(inputs), strict=True)
        checked_params = self.params_schema.model_validate_json(
            json.dumps(params or {}), strict=True
        )
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


def served_by_its_deployment(runtime: Any) -> Model:
    """The factory of a job kind whose deployment runs it itself (ingest, faces): no ModelHost
    builds it."""
    raise RuntimeError("this model runs in its own deployment, not in a ModelHost")


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


__all__ = ["EmptyParams", "ModelRegistry", "ModelSpec", "ValidationError"]
