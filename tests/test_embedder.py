"""Image embedders: EfficientNet-Lite0 with its real ImageNet weights, and CLIP's loading code on a
tiny random checkpoint the tests build (no CLIP weights exist offline)."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite_pytorch")

from busque.media.decode import decode_reduced
from busque.models.embedding import NoTextTower, create_embedder
from busque.models.embedding.efficientnet import (
    CAT_INDICES,
    DOG_INDICES,
    EfficientNetLite0Embedder,
    breed,
    default_weights_path,
    imagenet_classes,
    pet_label,
    preprocess,
)


def photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skdata, name)()).convert("RGB")


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


@pytest.fixture(scope="module")
def effnet() -> EfficientNetLite0Embedder:
    model = EfficientNetLite0Embedder(device="cpu", batch_size=8)
    model.load()
    return model


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    return {n: photo(n) for n in ("chelsea", "astronaut", "coffee", "rocket")}


# -- EfficientNet-Lite0, real weights -----------------------------------------------------------


def test_weights_are_found_in_the_package():
    path = default_weights_path()
    assert path.name == "efficientnet-lite0-57934424.pth"
    assert path.stat().st_size > 15_000_000


def test_imagenet_class_list():
    names = imagenet_classes()
    assert len(names) == 1000
    assert names[:3] == ("tench", "goldfish", "great white shark")
    assert names[151] == "Chihuahua" and names[268] == "Mexican hairless"
    assert [names[i] for i in sorted(CAT_INDICES)] == [
        "tabby",
        "tiger cat",
        "Persian cat",
        "Siamese cat",
        "Egyptian cat",
    ]
    assert len(DOG_INDICES) == 118
    assert names[999] == "toilet tissue"


def test_preprocess_shape_and_range():
    x = preprocess(photo("chelsea"))
    assert x.shape == (3, 224, 224) and x.dtype == np.float32
    assert -1.0 <= x.min() < x.max() <= 1.01
    # Grayscale / RGBA / palette inputs become RGB.
    for mode in ("L", "RGBA", "P"):
        assert preprocess(photo("astronaut").convert(mode)).shape == (3, 224, 224)
    assert preprocess(photo("rocket"), "resize").shape == (3, 224, 224)


def test_chelsea_is_a_cat(effnet, photos):
    (labels,) = effnet.labels([photos["chelsea"]], k=5)
    assert len(labels) == 5
    assert labels[0]["index"] in CAT_INDICES, labels
    assert all(set(item) >= {"label", "score"} for item in labels)
    scores = [item["score"] for item in labels]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0001
    pet = pet_label(labels)
    assert pet["species"] == "cat"
    assert pet["breed"] in {imagenet_classes()[i] for i in CAT_INDICES}
    assert breed(labels) == pet["breed"]


def test_non_pets_get_no_species(effnet, photos):
    for name in ("coffee", "rocket"):
        (labels,) = effnet.labels([photos[name]], k=5)
        assert pet_label(labels) == {"species": None, "breed": None}
    (coffee,) = effnet.labels([photos["coffee"]], k=1)
    assert coffee[0]["label"] == "espresso"


def test_pet_label_rules():
    dog = {"label": "golden retriever", "score": 0.5}
    assert pet_label([dog]) == {"species": "dog", "breed": "golden retriever"}
    # A pet class far down a confident non-pet list is not a pet.
    assert (
        pet_label([{"label": "tennis ball", "score": 0.9}, {**dog, "score": 0.02}])["species"]
        is None
    )
    # Mass adds up over breeds of one species.
    spread = [
        {"label": "tabby", "score": 0.3},
        {"label": "beagle", "score": 0.35},
        {"label": "Egyptian cat", "score": 0.2},
    ]
    assert pet_label(spread)["species"] == "cat" and pet_label(spread)["breed"] == "tabby"
    assert pet_label([]) == {"species": None, "breed": None}


def test_embeddings_are_1280d_unit_vectors(effnet, photos):
    vectors = effnet.embed_images(list(photos.values()))
    assert vectors.shape == (4, 1280) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert effnet.embed_images([]).shape == (0, 1280)


def test_batch_equals_one_by_one_and_is_deterministic(effnet, photos):
    images = list(photos.values()) * 3  # 12 images: more than one batch of 8
    batch = effnet.embed_images(images)
    single = np.concatenate([effnet.embed_images([img]) for img in images[:4]])
    np.testing.assert_allclose(batch[:4], single, atol=1e-5)
    np.testing.assert_allclose(batch[4:8], single, atol=1e-5)
    np.testing.assert_array_equal(effnet.embed_images(images[:4]), effnet.embed_images(images[:4]))
    vectors, labels = effnet.analyze(images[:4], k=3)
    np.testing.assert_allclose(vectors, single, atol=1e-5)
    assert [lab[0]["label"] for lab in labels] == [
        lab[0]["label"] for lab in effnet.labels(images[:4], k=3)
    ]


def test_near_duplicate_is_closer_than_other_photos(effnet, photos):
    original = photos["chelsea"]
    small = original.resize((original.width // 2, original.height // 2), Image.Resampling.LANCZOS)
    copies = [
        jpeg(small, 30),
        jpeg(original, 50),
        original.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    ]
    vectors = effnet.embed_images(
        [original, *copies, photos["astronaut"], photos["coffee"], photos["rocket"]]
    )
    sims = vectors[1:] @ vectors[0]
    near, others = sims[: len(copies)], sims[len(copies) :]
    assert near.min() > 0.75, sims  # half size + JPEG q30: ~0.85
    assert others.max() < 0.4, sims  # ~0.13
    assert near.min() - others.max() > 0.4, sims


def test_text_is_refused_without_a_text_tower(effnet):
    assert effnet.has_text is False
    with pytest.raises(NoTextTower):
        effnet.embed_texts(["a cat"])
    assert issubclass(NoTextTower, ValueError)


def test_encoded_photo_the_way_the_embedder_deployment_runs_it(effnet, photos):
    """Bytes -> decode_reduced -> prepare -> analyze_prepared: busque.serve.embedder's path."""
    buf = io.BytesIO()
    photos["chelsea"].save(buf, "PNG")
    pixels = decode_reduced(buf.getvalue(), min_side=effnet.source_side)
    vectors, labels = effnet.analyze_prepared([effnet.prepare(pixels)], 3)
    assert vectors.shape == (1, 1280) and effnet.describe()["model"] == "efficientnet-lite0"
    assert len(labels[0]) == 3 and labels[0][0]["index"] in CAT_INDICES


def test_options_are_checked():
    with pytest.raises(ValueError):
        EfficientNetLite0Embedder(device="tpu")
    with pytest.raises(ValueError):
        EfficientNetLite0Embedder(preprocess="stretch")
    with pytest.raises(ValueError):
        create_embedder("nope")
    cpu = EfficientNetLite0Embedder(device="cpu", half=True)  # half is CUDA-only
    cpu.load()
    assert cpu.describe()["dtype"] == "float32" and cpu.device == "cpu"


# -- CLIP: the real loading code on a tiny random checkpoint -------------------------------------


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory):
    pytest.importorskip("transformers")
    from busque.testing.tiny_models import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="module")
def clip(tiny_clip_dir, monkeypatch_module):
    monkeypatch_module.setenv("HF_HUB_OFFLINE", "1")
    model = create_embedder("clip", model_path=str(tiny_clip_dir), device="cpu", batch_size=4)
    model.load()
    return model


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_tiny_clip_checkpoint_files(tiny_clip_dir):
    files = set(os.listdir(tiny_clip_dir))
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= files
    assert {"vocab.json", "merges.txt"} <= files


def test_clip_image_and_text_embeddings(clip, photos):
    assert clip.has_text is True and clip.dim == 16
    images = list(photos.values()) + [photos["chelsea"].convert("L")]
    vectors = clip.embed_images(images)  # 5 images, batch_size 4: two batches
    assert vectors.shape == (5, 16) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(clip.embed_images(images[:1]), vectors[:1], atol=1e-5)

    texts = clip.embed_texts(["the cat", "a dog on the grass", "espresso"])
    assert texts.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)
    # Text search is a dot product in the shared space; padding does not change a text's vector.
    scores = vectors @ texts[0]
    assert scores.shape == (5,) and np.all(np.abs(scores) <= 1.0001)
    np.testing.assert_allclose(clip.embed_texts(["the cat"])[0], texts[0], atol=1e-5)
    assert clip.labels(images[:2]) == [[], []]
    assert clip.version and clip.describe()["has_text"] is True


def test_clip_reload_gives_the_same_vectors(tiny_clip_dir, clip, photos):
    again = create_embedder("clip", model_path=str(tiny_clip_dir), device="cpu")
    image = photos["coffee"]
    np.testing.assert_allclose(again.embed_images([image]), clip.embed_images([image]), atol=1e-5)
    np.testing.assert_allclose(again.embed_texts(["x"]), clip.embed_texts(["x"]), atol=1e-5)
    assert again.version == clip.version


def test_clip_needs_a_model_path():
    with pytest.raises(ValueError):
        create_embedder("clip", model_path="")


def test_cpu_optimisation_matches_eager(effnet, photos):
    assert effnet.optimized  # TorchScript freeze is the CPU default
    eager = EfficientNetLite0Embedder(device="cpu", optimize=False)
    images = list(photos.values())
    fast_vectors, fast_labels = effnet.analyze(images, k=3)
    vectors, labels = eager.analyze(images, k=3)
    assert not eager.optimized
    np.testing.assert_allclose(fast_vectors, vectors, atol=1e-5)
    assert [[x["index"] for x in lab] for lab in fast_labels] == [
        [x["index"] for x in lab] for lab in labels
    ]
