"""pipelines.dedupe: near-duplicate groups as connected components."""

from __future__ import annotations

import numpy as np

from pipelines.dedupe import components, embedding_groups


def test_components_join_chains_and_drop_singletons():
    paths = ["a", "b", "c", "d", "e"]
    assert components(paths, [(0, 1), (1, 2)]) == [["a", "b", "c"]]
    assert components(paths, []) == []


def test_embedding_groups_use_the_cosine_threshold_inclusively():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(3, 64)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    near = base[0] + 0.05 * rng.normal(size=64).astype(np.float32)
    near /= np.linalg.norm(near)
    vectors = np.vstack([base, near])
    paths = ["x.jpg", "y.jpg", "z.jpg", "x-small.jpg"]
    assert embedding_groups(paths, vectors, 0.9) == [["x-small.jpg", "x.jpg"]]
    exact = float(vectors[0] @ vectors[3])
    assert embedding_groups(paths, vectors, exact) == [["x-small.jpg", "x.jpg"]]
    assert embedding_groups(paths, vectors, 0.9999) == []
    assert embedding_groups(paths[:1], vectors[:1], 0.5) == []
