"""Stable Diffusion image generation: txt2img from a prompt, img2img from an uploaded photo.

One loaded diffusers pipeline serves both modes: the img2img pipeline is built from the txt2img
pipeline's components, so the weights are in memory once. Weights come only from a local
diffusers directory (`local_files_only`): nothing is downloaded at run time. The safety checker
is off (it is a separate model, and busque's callers moderate their own prompts).

A job reports progress once per denoising step and checks for cancellation there, so a cancel
stops it within one step. The same seed, input and weights give the same image on the same
device; a job without a seed gets a random one, which its result reports.
"""

from __future__ import annotations

import importlib.util
import io
import math
import secrets
import threading
from pathlib import Path
from typing import Any, Literal

from PIL import Image, ImageOps
from pydantic import BaseModel, ConfigDict, Field, model_validator

from busque.media.decode import DEFAULT_MAX_PIXELS, MediaError, decode_image, image_info
from busque.models.base import JobContext, Model, ModelError

# Avatar styles: a preset name -> the words added to the prompt (and the negative prompt).
STYLES: dict[str, tuple[str, str]] = {
    "watercolor": (
        "watercolor painting, soft washes of colour, visible paper texture",
        "photo, photorealistic, harsh lines",
    ),
    "anime": (
        "anime style, cel shading, clean line art, vibrant colours",
        "photo, photorealistic, 3d, blurry",
    ),
    "pixel-art": (
        "pixel art, 16-bit, limited palette, crisp square pixels",
        "photo, blurry, smooth gradients",
    ),
    "oil-painting": (
        "oil painting, visible brush strokes, rich colours, canvas texture",
        "photo, flat colours, cartoon",
    ),
    "3d-render": (
        "3d render, stylised character, soft studio lighting, octane render",
        "photo, flat, sketch, blurry",
    ),
}
Style = Literal["watercolor", "anime", "pixel-art", "oil-painting", "3d-render"]
STYLE_SUBJECT = "portrait of the person in the photo"  # the prompt when only a style is given

MAX_SEED = 2**32 - 1  # what most SD front ends use; exact in a JSON number everywhere
DEFAULT_SIDE = 512


class ImageGenInput(BaseModel):
    """txt2img, or img2img when `image_key` names an uploaded photo.

    The limits that depend on the deployment (`steps` <= images.max_steps, `width`/`height` <=
    images.max_side) are checked at submission by `validate_limits`, so a job over them is refused
    with a 4xx rather than accepted and failed.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    prompt: str | None = Field(
        None, min_length=1, max_length=1000, description="required unless a style is given"
    )
    negative_prompt: str | None = Field(None, max_length=1000)
    style: Style | None = Field(None, description="an avatar style preset, added to the prompt")
    image_key: str | None = Field(
        None,
        min_length=1,
        max_length=1024,
        description="an uploaded photo's object key (POST /v1/uploads): img2img from it",
    )
    strength: float = Field(
        0.6, gt=0, le=1, description="img2img: how far from the photo (1 = ignore it)"
    )
    steps: int = Field(25, ge=1, description="denoising steps (at most images.max_steps)")
    guidance: float = Field(
        7.5, ge=0, le=20, allow_inf_nan=False, description="classifier-free guidance scale"
    )
    seed: int | None = Field(
        None, ge=0, le=MAX_SEED, description="same seed, same image; none: a random one"
    )
    width: int = Field(
        DEFAULT_SIDE, ge=64, multiple_of=8, description="px, at most images.max_side"
    )
    height: int = Field(
        DEFAULT_SIDE, ge=64, multiple_of=8, description="px, at most images.max_side"
    )

    @model_validator(mode="after")
    def _complete(self) -> ImageGenInput:
        if self.prompt is None and self.style is None:
            raise ValueError("give a prompt, a style, or both")
        if self.image_key and int(self.steps * self.strength) < 1:
            # diffusers runs int(steps * strength) steps of img2img; zero would fail in the job.
            raise ValueError(
                f"img2img runs int(steps x strength) denoising steps: {self.steps} x "
                f"{self.strength} gives none; raise steps or strength"
            )
        return self


class AvatarInput(ImageGenInput):
    """An avatar: img2img from the person's photo, in a style, a prompt or both."""

    image_key: str = Field(
        min_length=1, max_length=1024, description="the uploaded photo's object key"
    )


def validate_limits(inputs: dict[str, Any] | ImageGenInput, *, max_steps: int, max_side: int):
    """Raise ModelError("invalid_input") when a request exceeds the deployment's limits."""
    if isinstance(inputs, dict):
        inputs = ImageGenInput.model_validate(inputs)
    problems = []
    if inputs.steps > max_steps:
        problems.append(f"steps {inputs.steps} > the limit {max_steps}")
    for name in ("width", "height"):
        value = getattr(inputs, name)
        if value > max_side:
            problems.append(f"{name} {value} > the limit {max_side}")
    if problems:
        if inputs.width == inputs.height == DEFAULT_SIDE:
            problems.append(f"width and height default to {DEFAULT_SIDE}: ask for smaller ones")
        raise ModelError("invalid_input", "; ".join(problems))


def build_prompt(inputs: ImageGenInput) -> tuple[str, str | None]:
    """The prompt and negative prompt the pipeline gets: the caller's, plus the style's words."""
    if inputs.style is None:
        return inputs.prompt or "", inputs.negative_prompt
    positive, negative = STYLES[inputs.style]
    prompt = f"{inputs.prompt or STYLE_SUBJECT}, {positive}"
    negative = f"{inputs.negative_prompt}, {negative}" if inputs.negative_prompt else negative
    return prompt, negative


def pipeline_dir_problem(model_path: str, setting: str, weights: str) -> str | None:
    """None when `model_path` (the setting `setting`, e.g. "images.model_path") looks like a
    loadable diffusers directory, else why not; `weights` names what it should hold."""
    if not model_path:
        env = "BUSQUE_" + setting.upper().replace(".", "__")
        return f"no {weights} weights configured: set {env} to a diffusers directory"
    path = Path(model_path).expanduser()
    if not path.is_dir():
        return f"{setting} {model_path!r} does not exist or is not a directory"
    if not (path / "model_index.json").is_file():
        return (
            f"{setting} {model_path!r} has no model_index.json: not a diffusers pipeline directory"
        )
    if importlib.util.find_spec("diffusers") is None:
        return "the diffusers package is not installed"
    return None


def unavailable_reason(model_path: str) -> str | None:
    return pipeline_dir_problem(model_path, "images.model_path", "Stable Diffusion")


def input_photo(data: bytes, width: int, height: int, *, max_pixels: int) -> Image.Image:
    """Decode an uploaded photo (EXIF orientation, bomb guard) and crop it, centred, to the
    target's aspect ratio at exactly width x height: img2img keeps the input's size, and a crop
    keeps faces undistorted where a plain resize would squash them."""
    try:
        info = image_info(data, max_pixels=max_pixels)
        # Decode no larger than needed for the crop to still cover width x height (JPEG decodes
        # at 1/2..1/8 scale then, which matters for camera-sized photos).
        scale = max(width / info.width, height / info.height)
        long_side = max(info.width, info.height)
        needed = math.ceil(long_side * scale)
        decoded = decode_image(
            data, max_pixels=max_pixels, max_side=needed if needed < long_side else None
        )
    except MediaError as exc:
        raise ModelError(exc.code, f"the input photo cannot be used: {exc}") from None
    return ImageOps.fit(decoded.image, (width, height), Image.Resampling.LANCZOS)


def png_bytes(image: Image.Image) -> bytes:
    """PNG at zlib level 1: a 512x512 image encodes in ~20 ms instead of ~60 ms at Pillow's
    default level 6 (on one CPU core), for ~10% more bytes; at GPU speeds that is 5-15% of a
    whole job otherwise."""
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)
    return out.getvalue()


class StableDiffusionGenerator(Model):
    """Options: `model_path` (a local diffusers directory), `device` ("auto" | "cpu" |
    "cuda[:N]"; float16 on CUDA, float32 on CPU), `max_steps`, `max_side` (the same limits the
    API checks at submission; checked again here for direct callers), `max_pixels` (the input
    photo's decompression-bomb guard)."""

    def __init__(
        self,
        *,
        model_path: str,
        device: str = "auto",
        max_steps: int = 50,
        max_side: int = 768,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ):
        super().__init__(
            model_path=model_path,
            device=device,
            max_steps=max_steps,
            max_side=max_side,
            max_pixels=max_pixels,
        )
        # One generation at a time per pipeline: a diffusers scheduler keeps per-call state
        # (its timesteps), and two calls at once would only share the same device anyway.
        self._generate_lock = threading.Lock()
        self.device = ""
        self.txt2img: Any = None
        self.img2img: Any = None

    def _load(self) -> None:
        import torch

        from busque.models.embedding.base import resolve_device

        reason = unavailable_reason(self.options["model_path"])
        if reason:
            raise ModelError("model_unavailable", reason)
        try:
            self.device = resolve_device(self.options["device"])
        except ValueError as exc:
            raise ModelError("model_unavailable", str(exc)) from None
        from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

        dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        try:
            pipe = StableDiffusionPipeline.from_pretrained(
                str(Path(self.options["model_path"]).expanduser()),
                local_files_only=True,
                dtype=dtype,
                safety_checker=None,
                requires_safety_checker=False,
            )
        except (OSError, ValueError) as exc:
            raise ModelError("model_unavailable", f"cannot load the pipeline: {exc}") from None
        pipe = pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        img2img = StableDiffusionImg2ImgPipeline(**pipe.components, requires_safety_checker=False)
        img2img.set_progress_bar_config(disable=True)
        self.txt2img, self.img2img = pipe, img2img

    def _predict(self, inputs: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
        # The API validated the input at submission; validate again for direct callers.
        request = ImageGenInput.model_validate(inputs)
        validate_limits(
            request, max_steps=self.options["max_steps"], max_side=self.options["max_side"]
        )
        seed = request.seed if request.seed is not None else secrets.randbelow(MAX_SEED + 1)
        photo = None
        if request.image_key:
            data = ctx.read_object(request.image_key)
            photo = input_photo(
                data, request.width, request.height, max_pixels=self.options["max_pixels"]
            )
        ctx.check_cancelled()
        with self._generate_lock:
            ctx.check_cancelled()  # it may have been canceled while another job held the lock
            image, denoising_steps = self.generate(request, seed, photo, ctx)
        result: dict[str, Any] = {
            "seed": seed,
            "steps": request.steps,
            "denoising_steps": denoising_steps,
            "width": image.width,
            "height": image.height,
            "mode": "img2img" if photo is not None else "txt2img",
            "style": request.style,
            "images": [ctx.artifact("image.png", png_bytes(image), "image/png")],
        }
        if photo is not None:
            result["input_image"] = ctx.artifact("input.png", png_bytes(photo), "image/png")
        return result

    def generate(
        self,
        request: ImageGenInput,
        seed: int,
        photo: Image.Image | None,
        ctx: JobContext,
    ) -> tuple[Image.Image, int]:
        """Run the pipeline; (the image, the denoising steps it ran). Call under the lock."""
        import torch

        prompt, negative = build_prompt(request)
        steps_run = 0

        def on_step_end(pipe, index: int, timestep, callback_kwargs: dict) -> dict:
            nonlocal steps_run
            steps_run = index + 1
            total = pipe.num_timesteps
            ctx.progress(100.0 * steps_run / total, f"step {steps_run}/{total}")
            ctx.check_cancelled()  # raises JobCanceled out of the pipeline
            return callback_kwargs

        common = {
            "prompt": prompt,
            "negative_prompt": negative,
            "num_inference_steps": request.steps,
            "guidance_scale": request.guidance,
            "generator": torch.Generator(self.device).manual_seed(seed),
            "callback_on_step_end": on_step_end,
            "output_type": "pil",
        }
        with torch.inference_mode():
            if photo is None:
                out = self.txt2img(width=request.width, height=request.height, **common)
            else:
                out = self.img2img(image=photo, strength=request.strength, **common)
        return out.images[0], steps_run
