"""Model presets: named entries of the catalog, each a job kind with default parameters (and
how the client's input names map to the kind's), loaded from a JSON file by `busque models
load FILE` so that defaults change without code, as the TCC orchestrator's seed script loaded
its ai_models.json. Loading is idempotent: an entry is created or updated, never duplicated.

The file is a list of {"id", "job_kind", "default_params"?, "inputs"?, "description"?}:

    [{"id": "sf3d-v1", "job_kind": "shap-e-img2img",
      "default_params": {"steps": 64}, "inputs": {"image_path": "image_key"}}]
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, Field, TypeAdapter
from sqlalchemy import Engine, insert, select, update

from busque.db.engine import readonly
from busque.db.schema import model_presets


class Preset(BaseModel):
    model_config = {"extra": "forbid"}

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    job_kind: str = Field(min_length=1, max_length=100)
    default_params: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, str] = Field(
        default_factory=dict, description="a client's input name -> the job kind's input name"
    )
    description: str = ""

    def job_input(self, params: dict[str, Any]) -> dict[str, Any]:
        """The job kind's input: the defaults, then the client's parameters over them, named as
        the kind names them."""
        merged = {**self.default_params, **params}
        return {self.inputs.get(name, name): value for name, value in merged.items()}

    def client_params(self, job_input: dict[str, Any]) -> dict[str, Any]:
        """A job's input named as the client named it."""
        named = {kind: client for client, kind in self.inputs.items()}
        return {named.get(name, name): value for name, value in job_input.items()}


PRESET_FILE = TypeAdapter(list[Preset])


class PresetStore:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.reader = readonly(engine)

    def load(self, presets: list[Preset]) -> tuple[int, int]:
        """Create or update each; returns (created, updated)."""
        created = updated = 0
        now = time.time()
        with self.engine.begin() as conn:
            for preset in presets:
                values = preset.model_dump() | {"updated_at": now}
                changed = conn.execute(
                    update(model_presets).where(model_presets.c.id == preset.id).values(values)
                ).rowcount
                if changed:
                    updated += 1
                else:
                    conn.execute(insert(model_presets).values(values))
                    created += 1
        return created, updated

    def get(self, preset_id: str) -> Preset | None:
        with self.reader.connect() as conn:
            row = conn.execute(select(model_presets).where(model_presets.c.id == preset_id)).first()
        return None if row is None else _preset(row)

    def all(self) -> list[Preset]:
        with self.reader.connect() as conn:
            rows = conn.execute(select(model_presets).order_by(model_presets.c.id)).all()
        return [_preset(row) for row in rows]


def _preset(row) -> Preset:
    values = row._asdict()
    values.pop("updated_at")
    return Preset(**values)
