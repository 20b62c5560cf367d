"""The image-generation catalog entries: `stable-diffusion` and `avatar`, on deployment "imagegen".

Both share one loaded pipeline per replica (`shared_generator`): a ModelHost builds one Model
per catalog id, and loading Stable Diffusion twice would double its memory. What a request can
be refused for is checked at submission (`admit`): the deployment's step and size limits, and
that an input photo is the tenant's, exists and is an image, so such a job is answered with a
4xx instead of being accepted and failed.
"""

from __future__ import annotations

import threading
from typing import Any

from busque.config import Settings
from busque.media.decode import MediaError, decode_image
from busque.models.base import ModelError
from busque.models.image.diffusion import (
    AvatarInput,
    ImageGenInput,
    StableDiffusionGenerator,
    unavailable_reason,
    validate_limits,
)
from busque.models.registry import ModelRegistry, ModelSpec
from busque.storage import InvalidKey, ObjectNotFound, ObjectTooLarge, validate_key

DEPLOYMENT = "imagegen"
TIMEOUT_S = 600.0

_shared: dict[tuple, StableDiffusionGenerator] = {}
_shared_lock = threading.Lock()


def shared_generator(settings: Settings) -> StableDiffusionGenerator:
    """One generator (one pipeline in memory) per configuration in a process."""
    images = settings.images
    options = {
        "model_path": images.model_path,
        "device": images.device,
        "max_steps": images.max_steps,
        "max_side": images.max_side,
        "max_pixels": settings.media.max_pixels,
    }
    key = tuple(sorted(options.items()))
    with _shared_lock:
        if key not in _shared:
            _shared[key] = StableDiffusionGenerator(**options)
        return _shared[key]


def check_input_photo(key: str, tenant_id: str, objects: Any, settings: Settings) -> None:
    """The photo is the tenant's, exists, is not over the upload limit and is a readable image
    (decoded in full, so a truncated one is refused here, not by the job); else ModelError with
    a 4xx code."""
    try:
        validate_key(key, tenant_id)
    except InvalidKey:  # another tenant's key reads as missing, as everywhere in the API
        raise ModelError("object_not_found", f"no object {key!r}") from None
    try:
        data = objects.get(key, settings.media.max_upload_bytes)
    except ObjectNotFound:
        raise ModelError("object_not_found", f"no object {key!r}") from None
    except ObjectTooLarge as exc:
        raise ModelError("image_too_large", str(exc)) from None
    try:
        decode_image(data, max_pixels=settings.media.max_pixels)
    except MediaError as exc:
        raise ModelError(exc.code, f"image_key {key!r}: {exc}") from None


def admission(settings: Settings):
    """The admit hook: (validated input, tenant, object store) -> None or ModelError."""

    def admit(inputs: dict, tenant_id: str, objects: Any) -> None:
        validate_limits(
            inputs, max_steps=settings.images.max_steps, max_side=settings.images.max_side
        )
        if inputs.get("image_key"):
            check_input_photo(inputs["image_key"], tenant_id, objects, settings)

    return admit


def register(registry: ModelRegistry, settings: Settings) -> None:
    common = {
        "kind": "image-generation",
        "backend": "diffusers",
        "factory": lambda runtime: shared_generator(runtime.settings),
        "deployment": DEPLOYMENT,
        "timeout_s": TIMEOUT_S,
        "unavailable": lambda s: unavailable_reason(s.images.model_path),
        "admit": admission(settings),
    }
    registry.register(
        ModelSpec(
            id="stable-diffusion",
            input_schema=ImageGenInput,
            description="Stable Diffusion: an image from a prompt (txt2img), or from an uploaded "
            "photo and a prompt when image_key is given (img2img). Artifact image.png; the "
            "result reports the seed.",
            **common,
        )
    )
    registry.register(
        ModelSpec(
            id="avatar",
            input_schema=AvatarInput,
            description="An avatar from an uploaded photo (image_key) in a style "
            "(watercolor, anime, pixel-art, oil-painting, 3d-render) and/or a prompt "
            "(img2img). Artifacts image.png and input.png.",
            **common,
        )
    )
