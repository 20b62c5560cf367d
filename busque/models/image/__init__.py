"""Image generation: Stable Diffusion txt2img and img2img (avatars) from local diffusers weights.

`busque.models.image.spec.register(registry, settings)` adds the catalog entries."""

from busque.models.image.diffusion import (
    STYLES,
    AvatarInput,
    ImageGenInput,
    StableDiffusionGenerator,
    unavailable_reason,
    validate_limits,
)

__all__ = [
    "STYLES",
    "AvatarInput",
    "ImageGenInput",
    "StableDiffusionGenerator",
    "unavailable_reason",
    "validate_limits",
]
