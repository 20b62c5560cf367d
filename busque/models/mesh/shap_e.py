"""Shap-E through diffusers: a 3D object from a prompt (ShapEPipeline) or from a photo
(ShapEImg2ImgPipeline), as a coloured mesh (GLB and PLY) and a preview of four views.

The denoising runs once (`output_type="latent"`); the renderer then decodes those latents twice:
to a mesh (marching cubes over the signed distance field, `shapes.grid_size` cells a side) and
to images for the preview. diffusers' Shap-E pipelines take no step callback, so the job's
progress and cancellation come from wrapping the scheduler's `step` for the call (Heun, the
scheduler Shap-E ships with, takes two model evaluations per step but reports each).
Weights come only from local directories (`local_files_only`).
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from busque.media.decode import DEFAULT_MAX_PIXELS, MediaError, decode_image
from busque.models.base import JobContext, Model, ModelError
from busque.models.image.diffusion import MAX_SEED, png_bytes
from busque.models.mesh.files import export, preview_sheet

# Where the denoising ends and the two decodes take the rest of the progress bar.
DENOISED, MESHED = 90.0, 97.0


class ShapeInput(BaseModel):
    """`steps` <= shapes.max_steps is checked at submission (the spec's `admit`)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    steps: int = Field(64, ge=1, description="denoising steps (at most shapes.max_steps)")
    seed: int | None = Field(
        None, ge=0, le=MAX_SEED, description="same seed, same object; none: a random one"
    )


class TextToShapeInput(ShapeInput):
    prompt: str = Field(min_length=1, max_length=1000, description="what to model")
    guidance: float = Field(
        15.0, ge=0, le=30, allow_inf_nan=False, description="classifier-free guidance scale"
    )


class ImageToShapeInput(ShapeInput):
    image_key: str = Field(
        min_length=1, max_length=1024, description="an uploaded photo's object key"
    )
    guidance: float = Field(
        3.0, ge=0, le=30, allow_inf_nan=False, description="classifier-free guidance scale"
    )


class ShapEGenerator(Model):
    """Options: `model_path` (a local diffusers Shap-E directory), `mode` ("text" or "image"),
    `device`, `max_steps`, `grid_size`, `preview_size`, `max_pixels` (the input photo's
    decompression-bomb guard)."""

    def __init__(
        self,
        *,
        model_path: str,
        mode: str,
        device: str = "auto",
        max_steps: int = 64,
        grid_size: int = 128,
        preview_size: int = 64,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ):
        super().__init__(
            model_path=model_path,
            mode=mode,
            device=device,
            max_steps=max_steps,
            grid_size=grid_size,
            preview_size=preview_size,
            max_pixels=max_pixels,
        )
        # One object at a time per pipeline: the scheduler keeps per-call state, and decoding
        # writes the latents' parameters into the renderer's own MLP.
        self._lock = threading.Lock()
        self.device = ""
        self.pipe: Any = None

    def _load(self) -> None:
        import torch

        from busque.models.embedding.base import resolve_device

        try:
            self.device = resolve_device(self.options["device"])
        except ValueError as exc:
            raise ModelError("model_unavailable", str(exc)) from None
        from diffusers import ShapEImg2ImgPipeline, ShapEPipeline

        cls = ShapEPipeline if self.options["mode"] == "text" else ShapEImg2ImgPipeline
        dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        try:
            pipe = cls.from_pretrained(
                str(Path(self.options["model_path"]).expanduser()),
                local_files_only=True,
                dtype=dtype,
            )
        except (OSError, ValueError) as exc:
            raise ModelError("model_unavailable", f"cannot load the pipeline: {exc}") from None
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe.to(self.device)

    def _predict(self, inputs: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
        schema = TextToShapeInput if self.options["mode"] == "text" else ImageToShapeInput
        request = schema.model_validate(inputs)
        if request.steps > self.options["max_steps"]:
            raise ModelError(
                "invalid_input", f"steps {request.steps} > the limit {self.options['max_steps']}"
            )
        seed = request.seed if request.seed is not None else secrets.randbelow(MAX_SEED + 1)
        condition: Any = getattr(request, "prompt", None)
        if self.options["mode"] == "image":
            try:
                decoded = decode_image(
                    ctx.read_object(request.image_key), max_pixels=self.options["max_pixels"]
                )
            except MediaError as exc:
                raise ModelError(exc.code, f"the input photo cannot be used: {exc}") from None
            condition = decoded.image
        ctx.check_cancelled()
        with self._lock:
            ctx.check_cancelled()  # it may have been canceled while another job held the lock
            mesh, views = self._generate(condition, request, seed, ctx)
        ctx.progress(100.0, "preview rendered")
        files, facts = export(mesh)
        return {
            "seed": seed,
            "steps": request.steps,
            "mode": f"{self.options['mode']}-to-3d",
            "mesh": {**facts, **{n: ctx.artifact(n, data, _TYPES[n]) for n, data in files.items()}},
            "preview": ctx.artifact("preview.png", png_bytes(preview_sheet(views)), "image/png"),
        }

    def _generate(self, condition: Any, request: ShapeInput, seed: int, ctx: JobContext):
        """Denoise, then decode a mesh and the preview's views. Call under the lock."""
        import torch

        scheduler = self.pipe.scheduler
        step = scheduler.step
        done = 0

        def counted_step(*args, **kwargs):
            nonlocal done
            ctx.check_cancelled()  # raises JobCanceled out of the pipeline
            out = step(*args, **kwargs)
            done += 1
            total = len(scheduler.timesteps)
            ctx.progress(DENOISED * done / total, f"step {done}/{total}")
            return out

        scheduler.step = counted_step
        try:
            with torch.inference_mode():
                latents = self.pipe(
                    condition,
                    num_inference_steps=request.steps,
                    guidance_scale=request.guidance,
                    generator=torch.Generator(self.device).manual_seed(seed),
                    output_type="latent",
                ).images
        finally:
            del scheduler.step  # the class's own again
        latent = latents[0][None]
        size = self.options["preview_size"]
        with torch.inference_mode():
            try:
                mesh = self.pipe.shap_e_renderer.decode_to_mesh(
                    latent, self.device, grid_size=self.options["grid_size"]
                )
            except (RuntimeError, ValueError, ZeroDivisionError) as exc:
                raise ModelError(
                    "no_surface", f"the generated object has no surface to mesh: {exc}"
                ) from None
            ctx.progress(MESHED, "mesh extracted")
            ctx.check_cancelled()
            # One batch per view, so any preview size divides into batches.
            views = self.pipe.shap_e_renderer.decode_to_image(
                latent, self.device, size=size, ray_batch_size=size * size
            )
        return mesh, views


_TYPES = {"mesh.glb": "model/gltf-binary", "mesh.ply": "application/x-ply"}
