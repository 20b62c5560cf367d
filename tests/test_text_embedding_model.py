"""The text embedder (busque.models.text_embedding) without Ray: its vectors are
sentence-transformers' for the same checkpoint, and the catalog knows it."""

from __future__ import annotations

import numpy as np
import pytest

from busque.config import Settings
from busque.models.text_embedding.minilm import (
    DIM,
    MODEL_ID,
    SentenceEmbedder,
    bundled_dir,
    unavailable_reason,
)
from busque.runtime import build_job_kinds

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason="no MiniLM weights")

TEXTS = [
    "A dog is running through the park.",
    "A puppy runs across the grass in a park.",
    "The central bank raised interest rates again.",
    "word " * 400,  # past 256 word pieces: truncated, as sentence-transformers truncates
]


@pytest.fixture(scope="module")
def model():
    embedder = SentenceEmbedder(device="cpu", batch_size=3)  # two batches, padded differently
    embedder.load()
    return embedder


def test_vectors_are_sentence_transformers_vectors(model):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    reference = sentence_transformers.SentenceTransformer(str(bundled_dir()), device="cpu")
    vectors, tokens = model.embed(TEXTS)
    expected = reference.encode(TEXTS)
    assert vectors.shape == (4, DIM) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, expected, atol=2e-6)
    assert tokens[3] == 256 and all(3 < t < 20 for t in tokens[:3])


def test_paraphrases_are_closer_than_unrelated_texts_and_rows_are_unit_length(model):
    vectors, _ = model.embed(TEXTS[:3])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    assert model.embed([])[0].shape == (0, DIM)


def test_the_catalog_serves_it_as_a_job_kind():
    spec = build_job_kinds(Settings()).get(MODEL_ID)
    assert spec.kind == "text-embedding" and spec.deployment == "textembed"
    assert spec.unavailable(Settings()) is None
    assert "not a Hugging Face model directory" in unavailable_reason("/nonexistent")
