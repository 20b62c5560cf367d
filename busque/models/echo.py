"""The `echo` model: returns its input. A real end-to-end check of the job pipeline (and the
no-op work of the jobs benchmark): create -> dispatch -> a model replica -> succeeded."""

from typing import Any

from pydantic import BaseModel, ConfigDict

from busque.models.base import JobContext, Model


class EchoInput(BaseModel):
    model_config = ConfigDict(extra="allow")


class Echo(Model):
    def _predict(self, inputs: dict[str, Any], ctx: JobContext) -> Any:
        return {"echo": inputs}
