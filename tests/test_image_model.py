"""Stable Diffusion generation at the model level (no Ray): the real diffusers loading and
pipeline code on a tiny random pipeline the tests build (no SD weights exist offline), with a
small in-memory JobContext; and the catalog entries' availability and admission checks against a
real local object store."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError
from skimage import data as skdata

pytest.importorskip("torch")
pytest.importorskip("diffusers")

from busque.config import Settings
from busque.models.base import JobCanceled, ModelError
from busque.models.image import AvatarInput, ImageGenInput, StableDiffusionGenerator
from busque.models.image import spec as image_spec
from busque.models.registry import ModelRegistry
from busque.runtime import Runtime
from busque.storage import LocalObjectStore

TENANT = "acme"
SMALL = {"steps": 2, "width": 64, "height": 64}


class FakeContext:
    """Records what the model reports; objects come from a dict; cancels after
    `cancel_after` progress events when set."""

    def __init__(self, objects: dict[str, bytes] | None = None, cancel_after: int | None = None):
        self.job_id = "job_test"
        self.attempt = 1
        self.tenant_id = TENANT
        self.objects = objects or {}
        self.cancel_after = cancel_after
        self.progress_events: list[tuple[float, str | None]] = []
        self.artifacts: dict[str, bytes] = {}
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def check_cancelled(self) -> None:
        if self._cancelled:
            raise JobCanceled(self.job_id)

    def progress(self, percent: float, message: str | None = None) -> None:
        self.progress_events.append((percent, message))
        if self.cancel_after is not None and len(self.progress_events) >= self.cancel_after:
            self._cancelled = True

    def output(self, chunk) -> None:
        pass

    def artifact(self, name: str, data: bytes, content_type: str) -> dict:
        self.artifacts[name] = data
        key = f"{TENANT}/artifacts/{self.job_id}/{name}"
        return {"name": name, "object_key": key, "content_type": content_type, "size": len(data)}

    def read_object(self, key: str) -> bytes:
        if key not in self.objects:
            raise ModelError("object_not_found", f"no object {key!r}")
        return self.objects[key]


def astronaut_jpeg() -> bytes:
    out = io.BytesIO()
    Image.fromarray(skdata.astronaut()).save(out, "JPEG", quality=90)
    return out.getvalue()


def png_size(data: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image.size


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    from busque.testing.tiny_models import build_tiny_stable_diffusion

    return build_tiny_stable_diffusion(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="module")
def generator(tiny_sd):
    model = StableDiffusionGenerator(model_path=str(tiny_sd), device="auto", max_steps=10)
    model.load()
    return model


def generate(generator, ctx=None, **inputs) -> tuple[dict, FakeContext]:
    ctx = ctx or FakeContext()
    checked = ImageGenInput.model_validate({**SMALL, **inputs}).model_dump(mode="json")
    return generator.predict(checked, ctx), ctx


# -- generation --------------------------------------------------------------------------------


def test_txt2img_writes_a_png_and_reports_each_step(generator):
    result, ctx = generate(generator, prompt="a cat on a sofa", seed=7)
    assert result["mode"] == "txt2img"
    assert (result["seed"], result["steps"], result["width"], result["height"]) == (7, 2, 64, 64)
    assert [a["name"] for a in result["images"]] == ["image.png"]
    assert result["images"][0]["content_type"] == "image/png"
    assert result["images"][0]["size"] == len(ctx.artifacts["image.png"])
    assert png_size(ctx.artifacts["image.png"]) == (64, 64)
    assert ctx.progress_events == [(50.0, "step 1/2"), (100.0, "step 2/2")]


def test_non_square_size(generator):
    result, ctx = generate(generator, prompt="a dog", seed=1, width=96, height=64)
    assert png_size(ctx.artifacts["image.png"]) == (96, 64)
    assert (result["width"], result["height"]) == (96, 64)


def test_same_seed_same_image_different_seed_different(generator):
    first = generate(generator, prompt="a dog", seed=123)[1].artifacts["image.png"]
    again = generate(generator, prompt="a dog", seed=123)[1].artifacts["image.png"]
    other = generate(generator, prompt="a dog", seed=124)[1].artifacts["image.png"]
    assert first == again
    assert first != other


def test_no_seed_gets_a_random_one_that_reproduces_the_image(generator):
    result, ctx = generate(generator, prompt="a dog")
    assert isinstance(result["seed"], int) and result["seed"] >= 0
    _, again = generate(generator, prompt="a dog", seed=result["seed"])
    assert again.artifacts["image.png"] == ctx.artifacts["image.png"]


def test_img2img_from_a_photo_stores_the_input_too(generator):
    ctx = FakeContext({f"{TENANT}/uploads/astronaut.jpg": astronaut_jpeg()})
    result, ctx = generate(
        generator,
        ctx,
        image_key=f"{TENANT}/uploads/astronaut.jpg",
        style="watercolor",
        steps=4,
        strength=0.5,
        seed=5,
    )
    assert result["mode"] == "img2img"
    assert result["denoising_steps"] == 2  # int(4 x 0.5)
    assert png_size(ctx.artifacts["image.png"]) == (64, 64)
    assert png_size(ctx.artifacts["input.png"]) == (64, 64)
    assert result["input_image"]["name"] == "input.png"
    assert [m for _, m in ctx.progress_events] == ["step 1/2", "step 2/2"]
    # The stored input is the photo itself (cropped and resized), not noise: close to a plain
    # downscale of the astronaut.
    stored = np.asarray(Image.open(io.BytesIO(ctx.artifacts["input.png"])).convert("RGB"))
    expected = np.asarray(Image.fromarray(skdata.astronaut()).resize((64, 64)))
    assert np.abs(stored.astype(int) - expected.astype(int)).mean() < 12


def test_img2img_refuses_data_that_is_not_an_image(generator):
    ctx = FakeContext({f"{TENANT}/uploads/x.jpg": b"not an image at all"})
    with pytest.raises(ModelError) as err:
        generate(generator, ctx, prompt="x", image_key=f"{TENANT}/uploads/x.jpg")
    assert err.value.code == "invalid_image"


def test_cancel_stops_within_one_step(generator):
    ctx = FakeContext(cancel_after=1)
    with pytest.raises(JobCanceled):
        generate(generator, ctx, prompt="a cat", steps=5, seed=1)
    assert len(ctx.progress_events) == 1
    assert "image.png" not in ctx.artifacts
    # The pipeline is still usable after a canceled job.
    result, _ = generate(generator, prompt="a cat", seed=1)
    assert result["images"]


def test_the_model_enforces_its_limits_for_direct_callers(generator):
    with pytest.raises(ModelError) as err:
        generate(generator, prompt="a cat", steps=11)
    assert err.value.code == "invalid_input"


def test_a_missing_model_directory_fails_to_load(tmp_path):
    model = StableDiffusionGenerator(model_path=str(tmp_path / "nope"), device="cpu")
    with pytest.raises(ModelError) as err:
        model.predict({"prompt": "a cat", **SMALL}, FakeContext())
    assert err.value.code == "model_unavailable"


# -- the input schema --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "inputs",
    [
        {"prompt": ""},
        {"prompt": "   "},
        {},
        {"negative_prompt": "blurry"},
        {"prompt": "x" * 1001},
        {"style": "cubism"},
        {"prompt": "a cat", "width": 100},
        {"prompt": "a cat", "height": 32},
        {"prompt": "a cat", "steps": 0},
        {"prompt": "a cat", "guidance": 21},
        {"prompt": "a cat", "seed": -1},
        {"prompt": "a cat", "strength": 0},
        {"prompt": "a cat", "image_key": "acme/x.jpg", "steps": 1, "strength": 0.5},
        {"prompt": "a cat", "stpes": 10},
    ],
)
def test_schema_refuses(inputs):
    with pytest.raises(ValidationError):
        ImageGenInput.model_validate(inputs)


def test_schema_defaults_and_style_only():
    checked = ImageGenInput.model_validate({"style": "pixel-art"}).model_dump(mode="json")
    assert checked["prompt"] is None
    assert (checked["steps"], checked["width"], checked["height"]) == (25, 512, 512)
    assert (checked["guidance"], checked["strength"], checked["seed"]) == (7.5, 0.6, None)


def test_avatar_needs_a_photo():
    with pytest.raises(ValidationError):
        AvatarInput.model_validate({"style": "anime"})
    assert AvatarInput.model_validate({"style": "anime", "image_key": "acme/a.jpg"}).image_key


# -- the catalog entries -----------------------------------------------------------------------


def settings_for(tmp_path, model_path: str, **images) -> Settings:
    return Settings(
        home=tmp_path / "home",
        images={"model_path": model_path, "max_steps": 30, "max_side": 256, **images},
    )


def registry_for(settings: Settings) -> ModelRegistry:
    registry = ModelRegistry()
    image_spec.register(registry, settings)
    return registry


def test_unavailable_reasons(tmp_path, tiny_sd):
    not_a_pipeline = tmp_path / "empty"
    not_a_pipeline.mkdir()
    for path, words in (
        ("", "BUSQUE_IMAGES__MODEL_PATH"),
        (str(tmp_path / "missing"), "does not exist"),
        (str(not_a_pipeline), "model_index.json"),
    ):
        spec = registry_for(settings_for(tmp_path, path)).get("stable-diffusion")
        reason = spec.unavailable(settings_for(tmp_path, path))
        assert reason and words in reason
    settings = settings_for(tmp_path, str(tiny_sd))
    registry = registry_for(settings)
    for model_id in ("stable-diffusion", "avatar"):
        described = registry.get(model_id).describe(settings)
        assert described["available"] is True
        assert (described["kind"], described["deployment"]) == ("image-generation", "imagegen")


def test_both_entries_share_one_pipeline(tmp_path, tiny_sd):
    settings = settings_for(tmp_path, str(tiny_sd))
    registry = registry_for(settings)
    sd, avatar = registry.get("stable-diffusion"), registry.get("avatar")
    runtime = Runtime(settings)
    assert sd.factory(runtime) is avatar.factory(runtime)


@pytest.fixture
def store(tmp_path):
    objects = LocalObjectStore(tmp_path / "objects", "test-signing-key", "http://127.0.0.1:1")
    objects.put(f"{TENANT}/uploads/photo.jpg", astronaut_jpeg(), "image/jpeg")
    objects.put(f"{TENANT}/uploads/notes.txt", b"hello, not a photo", "text/plain")
    objects.put("other/uploads/photo.jpg", astronaut_jpeg(), "image/jpeg")
    return objects


def admit_code(tmp_path, tiny_sd, store, model_id="stable-diffusion", **inputs) -> str | None:
    settings = settings_for(tmp_path, str(tiny_sd))
    spec = registry_for(settings).get(model_id)
    checked, _ = spec.validate(inputs, None)
    try:
        spec.admit(checked, TENANT, store)
    except ModelError as exc:
        return exc.code
    return None


def test_admit_accepts_a_request_within_the_limits(tmp_path, tiny_sd, store):
    photo = f"{TENANT}/uploads/photo.jpg"
    code = admit_code(tmp_path, tiny_sd, store, prompt="a cat", width=256, height=256, steps=30)
    assert code is None
    code = admit_code(
        tmp_path, tiny_sd, store, "avatar", style="anime", image_key=photo, width=128, height=256
    )
    assert code is None


@pytest.mark.parametrize(
    ("inputs", "code"),
    [
        ({"prompt": "a cat", "steps": 31}, "invalid_input"),
        ({"prompt": "a cat", "width": 264}, "invalid_input"),
        ({"prompt": "a cat", "height": 512}, "invalid_input"),
        ({"prompt": "a cat", "width": 256, "height": 256, "image_key": "acme/uploads/none.jpg"},
         "object_not_found"),
        ({"prompt": "a cat", "width": 256, "height": 256, "image_key": "other/uploads/photo.jpg"},
         "object_not_found"),
        ({"prompt": "a cat", "width": 256, "height": 256, "image_key": "acme/../other/x.jpg"},
         "object_not_found"),
        ({"prompt": "a cat", "width": 256, "height": 256, "image_key": "acme/uploads/notes.txt"},
         "invalid_image"),
    ],
)  # fmt: skip
def test_admit_refuses(tmp_path, tiny_sd, store, inputs, code):
    assert admit_code(tmp_path, tiny_sd, store, **inputs) == code


def test_admit_refuses_an_avatar_over_the_size_limit(tmp_path, tiny_sd, store):
    photo = f"{TENANT}/uploads/photo.jpg"
    assert admit_code(tmp_path, tiny_sd, store, "avatar", style="anime", image_key=photo,
                      width=512, height=256) == "invalid_input"  # fmt: skip
