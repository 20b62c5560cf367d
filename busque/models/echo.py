"""The `echo` model: returns its input. A real end-to-end check of the job pipeline (and the
no-op work of the jobs benchmark): create -> dispatch -> a model replica -> succeeded."""

from typing import Any

from pydantic import BaseModel, ConfigDict

from busque.config import Settings
from busque.models.base import JobContext, Model
from busque.models.registry import ModelRegistry, ModelSpec


class EchoInput(BaseModel):
    model_config = ConfigDict(extra="allow")


class Echo(Model):
    def _predict(self, inputs: dict[str, Any], ctx: JobContext) -> Any:
        return {"echo": inputs}


def register(registry: ModelRegistry, settings: Settings) -> None:
    registry.register(
        ModelSpec(
            id="echo",
            kind="utility",
            backend="python",
            factory=lambda runtime: Echo(),
            input_schema=EchoInput,
            deployment="utility",
            description="Returns its input: checks the job pipeline end to end.",
            timeout_s=30,
        )
    )
