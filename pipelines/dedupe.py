"""Near-duplicate groups for the backfill's report: by pHash radius, by embedding similarity and,
for videos, by keyframe hashes. A group is a connected component of "near" pairs; nothing here
deletes anything."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable

import numpy as np

# Queries per FAISS range search: bounds the driver's memory for the similarity lists.
EMBEDDING_CHUNK = 4096


def components(paths: list[str], pairs: Iterable[tuple[int, int]]) -> list[list[str]]:
    """The groups (sorted, two files or more) that the pairs (indices into paths) connect."""
    parent = list(range(len(paths)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        parent[root(j)] = root(i)
    groups: dict[int, list[str]] = defaultdict(list)
    for i, path in enumerate(paths):
        groups[root(i)].append(path)
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


def phash_groups(rows: list[dict], radius: int) -> list[list[str]]:
    """Files (one per sha256) within `radius` pHash bits (busque's multi-index-hashing index
    finds the neighbours)."""
    from busque.index.phash_index import PhashIndex
    from busque.media.phash import hex_to_int64

    if len(rows) < 2:
        return []
    codes = [hex_to_int64(r["phash"]) for r in rows]
    index = PhashIndex()
    index.add(list(range(len(rows))), codes)
    pairs = (
        (i, j)
        for i, code in enumerate(codes)
        for j, _ in index.search_radius(code, radius)
        if j != i
    )
    return components([r["path"] for r in rows], pairs)


def embedding_groups(paths: list[str], vectors: np.ndarray, min_cosine: float) -> list[list[str]]:
    """Files whose (L2-normalised) embeddings have cosine >= min_cosine: an exact FAISS range
    search, all against all, a chunk of queries at a time."""
    import faiss

    if len(paths) < 2:
        return []
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    pairs = []
    # FAISS keeps inner products strictly above the radius; its sums may differ from numpy's in
    # the last bits, so the threshold itself is kept with a little slack
    radius = min_cosine - 1e-6
    for start in range(0, len(vectors), EMBEDDING_CHUNK):
        lims, _, found = index.range_search(vectors[start : start + EMBEDDING_CHUNK], radius)
        for q in range(len(lims) - 1):
            i = start + q
            pairs += [(i, int(j)) for j in found[lims[q] : lims[q + 1]] if j > i]
    return components(paths, pairs)


def video_groups(videos: list[dict], share: float = 0.8) -> list[list[str]]:
    """Videos whose sampled keyframes match (pHash within 8 bits) in at least `share` of them,
    either way round (a clip cut from a longer video matches it)."""
    from busque.media.video import video_near_duplicates

    frames = [json.loads(v["keyframes"]) for v in videos]
    pairs = (
        (i, j)
        for i in range(len(videos))
        for j in range(i + 1, len(videos))
        if max(
            video_near_duplicates(frames[i], frames[j]),
            video_near_duplicates(frames[j], frames[i]),
        )
        >= share
    )
    return components([v["path"] for v in videos], pairs)
