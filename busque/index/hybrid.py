"""One tenant's collection: a vector index, a pHash index and the sha256 of every item.

Hybrid score = ``w_visual * cosine + w_phash * (1 - hamming / 64)``. In hybrid mode the
candidates are the union of the top vector hits (``candidate_factor * k``, at least
``min_candidates``), the pHash hits within ``phash_radius`` and the exact sha256 duplicates;
every candidate is rescored on both signals (an item with no vector or no pHash scores 0 on
that signal). ``visual`` scores by cosine alone, ``phash`` by pHash similarity alone.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .phash_index import PhashIndex, as_code
from .vector_index import VectorIndex, normalize

MODES = ("hybrid", "visual", "phash")


@dataclass(frozen=True)
class Match:
    media_id: int
    score: float
    distance: float | None  # cosine distance, 1 - cosine; None when either side has no vector
    phash_distance: int | None  # Hamming distance; None when either side has no pHash
    exact_duplicate: bool  # same sha256 as the query

    def to_dict(self) -> dict:
        return {
            "media_id": self.media_id,
            "score": self.score,
            "distance": self.distance,
            "phash_distance": self.phash_distance,
            "exact_duplicate": self.exact_duplicate,
        }


class HybridIndex:
    def __init__(
        self,
        dim: int,
        w_visual: float = 0.7,
        w_phash: float = 0.3,
        phash_radius: int = 8,
        candidate_factor: int = 4,
        min_candidates: int = 50,
        vector_options: dict | None = None,
        phash_options: dict | None = None,
    ) -> None:
        if w_visual < 0 or w_phash < 0 or w_visual + w_phash <= 0:
            raise ValueError("weights must be non-negative and not both zero")
        self.dim = dim
        self.w_visual = float(w_visual)
        self.w_phash = float(w_phash)
        self.phash_radius = int(phash_radius)
        self.candidate_factor = int(candidate_factor)
        self.min_candidates = int(min_candidates)
        self.vector_options = dict(vector_options or {})
        self.phash_options = dict(phash_options or {})
        self.vectors = VectorIndex(dim, **self.vector_options)
        self.phashes = PhashIndex(**self.phash_options)
        self._sha: dict[int, str | None] = {}  # every live media id -> its sha256
        self._by_sha: dict[str, set[int]] = {}
        self.changes = 0  # counts writes: a cache of answers is current while it is unchanged
        self._lock = threading.RLock()

    # -- contents ----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._sha)

    def __contains__(self, media_id: int) -> bool:
        return int(media_id) in self._sha

    def ids(self) -> list[int]:
        with self._lock:
            return list(self._sha)

    def locked(self) -> threading.RLock:
        """The lock every write holds: hold it around a read of `vectors` or `phashes` made
        outside this class (a write may change FAISS's index under a search, and crash it)."""
        return self._lock

    def find_sha256(self, sha256: str) -> list[int]:
        """Media ids stored with exactly this sha256."""
        return sorted(self._by_sha.get(sha256.lower(), ()))

    # -- writes ------------------------------------------------------------------------

    def add(
        self,
        media_id: int,
        vector: np.ndarray | None,
        phash: int | str | None,
        sha256: str | None = None,
    ) -> None:
        """Add or replace one item; ``vector`` or ``phash`` may be None (not indexed there)."""
        self.add_many(
            [media_id],
            None if vector is None else np.asarray(vector, dtype=np.float32)[None, :],
            None if phash is None else [phash],
            [sha256],
        )

    def add_many(
        self,
        media_ids: Iterable[int],
        vectors: np.ndarray | None,
        phashes: Iterable[int | str] | None,
        sha256s: Iterable[str | None] | None = None,
    ) -> None:
        """Add or replace a batch; ``vectors``/``phashes`` None means none for the batch."""
        ids = np.asarray(list(media_ids), dtype=np.int64)
        shas = list(sha256s) if sha256s is not None else [None] * len(ids)
        if len(shas) != len(ids):
            raise ValueError("sha256s and media_ids differ in length")
        if len(np.unique(ids)) != len(ids):
            raise ValueError("duplicate media ids in one batch")
        if (ids < 0).any():
            raise ValueError("media ids must be >= 0 (FAISS reports no result as -1)")
        codes = None
        if phashes is not None:
            codes = np.array([as_code(p) for p in phashes], dtype=np.uint64)
            if len(codes) != len(ids):
                raise ValueError("phashes and media_ids differ in length")
        if vectors is not None:
            vectors = normalize(vectors, self.dim)
            if len(vectors) != len(ids):
                raise ValueError("vectors and media_ids differ in length")
        with self._lock:
            self.changes += 1
            replaced = [int(i) for i in ids if int(i) in self._sha]
            if replaced:
                self._remove_locked(replaced)
            if vectors is not None:
                self.vectors.add(ids, vectors)
            if codes is not None:
                self.phashes.add(ids, codes)
            for media_id, sha in zip(ids.tolist(), shas, strict=True):
                sha = sha.lower() if sha else None
                self._sha[media_id] = sha
                if sha:
                    self._by_sha.setdefault(sha, set()).add(media_id)

    def remove(self, media_id: int | Iterable[int]) -> int:
        """Remove one id or many; returns how many were present."""
        ids = [int(media_id)] if np.isscalar(media_id) else [int(i) for i in media_id]
        with self._lock:
            return self._remove_locked(ids)

    def _remove_locked(self, ids: list[int]) -> int:
        present = [i for i in ids if i in self._sha]
        if not present:
            return 0
        self.changes += 1
        self.vectors.remove(present)
        self.phashes.remove(present)
        for i in present:
            sha = self._sha.pop(i)
            if sha:
                group = self._by_sha.get(sha)
                if group is not None:
                    group.discard(i)
                    if not group:
                        del self._by_sha[sha]
        return len(present)

    # -- reads -------------------------------------------------------------------------

    def search(
        self,
        vector: np.ndarray | None = None,
        phash: int | str | None = None,
        k: int = 10,
        mode: str = "hybrid",
        exclude_ids: Iterable[int] = (),
        min_score: float | None = None,
        sha256: str | None = None,
    ) -> list[Match]:
        """The ``k`` best matches, best first (ties by media id)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        if k <= 0:
            return []
        if mode == "visual" and vector is None:
            raise ValueError("visual search needs a vector")
        if mode == "phash" and phash is None:
            raise ValueError("phash search needs a phash")
        if vector is None and phash is None:
            raise ValueError("search needs a vector or a phash")
        q = None if vector is None else normalize(vector, self.dim)[0]
        code = None if phash is None else as_code(phash)
        sha = sha256.lower() if sha256 else None
        excl = {int(i) for i in exclude_ids}
        with self._lock:
            cand: dict[int, float | None] = {}  # id -> cosine when already known
            if q is not None and mode in ("hybrid", "visual"):
                n = k + len(excl)
                if mode == "hybrid":
                    n = max(self.candidate_factor * k, self.min_candidates) + len(excl)
                scores, ids = self.vectors.search(q[None, :], n, exclude=list(excl) or None)
                for s, i in zip(scores[0].tolist(), ids[0].tolist(), strict=True):
                    if i >= 0:
                        cand[i] = s
            ham: dict[int, int] = {}
            if code is not None and mode in ("hybrid", "phash"):
                if mode == "phash":
                    hits = self.phashes.knn(code, k + len(excl))
                else:
                    hits = self.phashes.search_radius(code, self.phash_radius)
                for i, d in hits:
                    ham[i] = d
                    cand.setdefault(i, None)
            if sha:
                for i in self._by_sha.get(sha, ()):
                    cand.setdefault(i, None)
            matches = []
            for media_id, cos in cand.items():
                if media_id in excl or media_id not in self._sha:
                    continue
                if cos is None and q is not None:
                    stored = self.vectors.reconstruct(media_id)
                    cos = None if stored is None else float(np.dot(stored, q))
                if cos is not None:  # float rounding: a vector and itself can give 1 + 1e-7
                    cos = min(1.0, max(-1.0, cos))
                d = ham.get(media_id)
                if d is None and code is not None:
                    stored_code = self.phashes.get(media_id)
                    if stored_code is not None:
                        d = int((int(code) ^ stored_code).bit_count())
                if mode == "visual":
                    score = cos if cos is not None else 0.0
                elif mode == "phash":
                    score = 1.0 - d / 64.0 if d is not None else 0.0
                else:
                    score = self.hybrid_score(cos, d)
                if min_score is not None and score < min_score:
                    continue
                matches.append(
                    Match(
                        media_id=media_id,
                        score=float(score),
                        distance=None if cos is None else float(1.0 - cos),
                        phash_distance=d,
                        exact_duplicate=bool(sha) and self._sha.get(media_id) == sha,
                    )
                )
        matches.sort(key=lambda m: (-m.score, m.media_id))
        return matches[:k]

    def hybrid_score(self, cosine: float | None, phash_distance: int | None) -> float:
        """``(w_visual * cosine + w_phash * (1 - hamming/64)) / (w_visual + w_phash)``."""
        visual = cosine if cosine is not None else 0.0
        ph = 1.0 - phash_distance / 64.0 if phash_distance is not None else 0.0
        return (self.w_visual * visual + self.w_phash * ph) / (self.w_visual + self.w_phash)

    def near_duplicates(
        self,
        phash: int | str,
        radius: int = 8,
        exclude_ids: Iterable[int] = (),
        sha256: str | None = None,
    ) -> list[Match]:
        """Every item within ``radius`` pHash bits, nearest first; score is pHash similarity."""
        excl = {int(i) for i in exclude_ids}
        sha = sha256.lower() if sha256 else None
        with self._lock:
            hits = self.phashes.search_radius(phash, radius)
            return [
                Match(
                    media_id=i,
                    score=1.0 - d / 64.0,
                    distance=None,
                    phash_distance=d,
                    exact_duplicate=bool(sha) and self._sha.get(i) == sha,
                )
                for i, d in hits
                if i not in excl
            ]

    # -- persistence -------------------------------------------------------------------

    def config(self) -> dict:
        return {
            "dim": self.dim,
            "w_visual": self.w_visual,
            "w_phash": self.w_phash,
            "phash_radius": self.phash_radius,
            "candidate_factor": self.candidate_factor,
            "min_candidates": self.min_candidates,
            "vector_options": self.vector_options,
            "phash_options": self.phash_options,
        }

    def to_parts(self) -> dict[str, bytes]:
        """The files of a snapshot: ``vectors.faiss``, ``phash.npy``, ``meta.json``."""
        with self._lock:
            meta = {
                "format": 1,
                "config": self.config(),
                "count": len(self._sha),
                "ids": list(self._sha),
                "sha256": {str(i): s for i, s in self._sha.items() if s},
            }
            return {
                "vectors.faiss": self.vectors.serialize(),
                "phash.npy": self.phashes.to_bytes(),
                "meta.json": json.dumps(meta).encode(),
            }

    @classmethod
    def from_parts(cls, parts: dict[str, bytes], meta: dict | None = None) -> HybridIndex:
        meta = meta if meta is not None else json.loads(parts["meta.json"])
        if meta.get("format") != 1:
            raise ValueError(f"unknown index snapshot format {meta.get('format')!r}")
        cfg = dict(meta["config"])
        index = cls(**cfg)
        index.vectors = VectorIndex.deserialize(parts["vectors.faiss"])
        index.phashes = PhashIndex.from_bytes(parts["phash.npy"], **index.phash_options)
        shas = meta.get("sha256", {})
        for i in meta["ids"]:
            sha = shas.get(str(i))
            index._sha[int(i)] = sha
            if sha:
                index._by_sha.setdefault(sha, set()).add(int(i))
        return index
