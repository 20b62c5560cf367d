"""Text-to-image search with the CLIP backend: the real loading code on a tiny random CLIP that
the test builds, its text and image towers feeding the same hybrid index the Matcher serves."""

from __future__ import annotations

import numpy as np
import skimage.data
from PIL import Image

from busque.index.hybrid import HybridIndex
from busque.models.embedding import create_embedder
from busque.testing.tiny_models import build_tiny_clip


def test_text_queries_search_images_in_the_same_space(tmp_path):
    build_tiny_clip(tmp_path / "clip")
    embedder = create_embedder(
        "clip", model_path=str(tmp_path / "clip"), local_files_only=True, device="cpu"
    )
    photos = [
        Image.fromarray(getattr(skimage.data, n)()).convert("RGB")
        for n in ("astronaut", "chelsea", "coffee", "rocket")
    ]
    vectors = embedder.embed_images(photos)
    index = HybridIndex(embedder.dim)
    for media_id, vector in enumerate(vectors, start=1):
        index.add(media_id, vector, None)
    query = embedder.embed_texts(["a photo of a cat"])[0]
    matches = index.search(vector=query, k=4, mode="visual")
    assert sorted(m.media_id for m in matches) == [1, 2, 3, 4]
    expected = np.argsort(-(vectors @ query))[0] + 1  # the nearest image by cosine
    assert matches[0].media_id == expected
    assert abs(matches[0].distance - (1 - float(vectors[expected - 1] @ query))) < 1e-4
