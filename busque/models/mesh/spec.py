"""The 3D catalog entries: `shap-e` (text-to-3D) and `shap-e-img2img` (image-to-3D), on
deployment "shapegen". Without a configured weights directory each is listed as unavailable
and its jobs are refused (422 model_unavailable); Shap-E's weights are not shipped offline."""

from __future__ import annotations

from typing import Any

from busque.config import Settings
from busque.models.base import ModelError
from busque.models.image.diffusion import pipeline_dir_problem
from busque.models.image.spec import check_input_photo
from busque.models.mesh.shap_e import ImageToShapeInput, ShapEGenerator, TextToShapeInput
from busque.models.registry import ModelRegistry, ModelSpec

DEPLOYMENT = "shapegen"
TIMEOUT_S = 900.0


def _generator(settings: Settings, mode: str) -> ShapEGenerator:
    shapes = settings.shapes
    return ShapEGenerator(
        model_path=shapes.text_model_path if mode == "text" else shapes.image_model_path,
        mode=mode,
        device=shapes.device,
        max_steps=shapes.max_steps,
        grid_size=shapes.grid_size,
        preview_size=shapes.preview_size,
        max_pixels=settings.media.max_pixels,
    )


def admission(settings: Settings):
    """Refuse at submission what the job would fail on: too many steps, a missing photo."""

    def admit(inputs: dict, tenant_id: str, objects: Any) -> None:
        if inputs["steps"] > settings.shapes.max_steps:
            raise ModelError(
                "invalid_input", f"steps {inputs['steps']} > the limit {settings.shapes.max_steps}"
            )
        if inputs.get("image_key"):
            check_input_photo(inputs["image_key"], tenant_id, objects, settings)

    return admit


# id -> (mode, input, the setting naming its weights, what they are, description)
KINDS = {
    "shap-e": (
        "text",
        TextToShapeInput,
        "text_model_path",
        "Shap-E",
        "Shap-E text-to-3D: a coloured mesh from a prompt.",
    ),
    "shap-e-img2img": (
        "image",
        ImageToShapeInput,
        "image_model_path",
        "Shap-E img2img",
        "Shap-E image-to-3D: a coloured mesh from an uploaded photo (image_key; an object on a "
        "plain background works best).",
    ),
}
OUTPUTS = " Artifacts mesh.glb, mesh.ply and preview.png (four views); job.progress per step."


def _unavailable(setting: str, weights: str):
    return lambda s: pipeline_dir_problem(getattr(s.shapes, setting), f"shapes.{setting}", weights)


def _factory(mode: str):
    return lambda runtime: _generator(runtime.settings, mode)


def register(registry: ModelRegistry, settings: Settings) -> None:
    for model_id, (mode, schema, setting, weights, description) in KINDS.items():
        registry.register(
            ModelSpec(
                id=model_id,
                kind="3d-generation",
                backend="diffusers",
                factory=_factory(mode),
                input_schema=schema,
                deployment=DEPLOYMENT,
                timeout_s=TIMEOUT_S,
                unavailable=_unavailable(setting, weights),
                admit=admission(settings),
                description=description + OUTPUTS,
            )
        )
