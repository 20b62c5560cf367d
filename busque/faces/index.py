"""A tenant's faces in FAISS (exact L2 over 128-d embeddings), kept in step with the SQL store.

The store is the truth; this is a cache any process can hold (the Gateway for face search, the
ingest workers for clustering). It follows the faces table by `seq` (with IdFollower, since
PostgreSQL may commit a smaller seq after a larger one is visible). Faces deleted since are
dropped when a lookup finds them missing from the store (`forget`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import faiss
import numpy as np

from busque.db.follow import IdFollower
from busque.faces.store import FaceStore

BATCH = 10_000


@dataclass
class _TenantFaces:
    index: faiss.IndexIDMap2
    follower: IdFollower = field(default_factory=lambda: IdFollower(0))
    lock: threading.Lock = field(default_factory=threading.Lock)


class FaceIndex:
    def __init__(self, store: FaceStore, dim: int = 128):
        self.store = store
        self.dim = dim
        self._tenants: dict[str, _TenantFaces] = {}
        self._lock = threading.Lock()

    def _tenant(self, tenant_id: str) -> _TenantFaces:
        with self._lock:
            if tenant_id not in self._tenants:
                self._tenants[tenant_id] = _TenantFaces(
                    faiss.IndexIDMap2(faiss.IndexFlatL2(self.dim))
                )
            return self._tenants[tenant_id]

    def sync(self, tenant_id: str) -> int:
        """Read the faces added since the last sync; returns how many the index holds."""
        faces = self._tenant(tenant_id)
        with faces.lock:
            while True:
                rows = self.store.embeddings_after(
                    tenant_id, faces.follower.last_id, faces.follower.to_recheck(), BATCH
                )
                if rows:
                    seqs = np.array([r[0] for r in rows], dtype="int64")
                    rechecked = seqs[seqs <= faces.follower.last_id]
                    if len(rechecked):  # a gap filled in: make sure no seq is held twice
                        faces.index.remove_ids(rechecked)
                    faces.index.add_with_ids(self._rows([r[2] for r in rows]), seqs)
                for seq, _, _ in rows:
                    faces.follower.saw(seq)
                if len(rows) < BATCH:
                    return faces.index.ntotal

    def search(self, tenant_id: str, vectors: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """The k nearest faces of each query vector: [(seq, L2 distance)], nearest first."""
        faces = self._tenant(tenant_id)
        with faces.lock:
            if faces.index.ntotal == 0:
                return [[] for _ in range(len(vectors))]
            squared, ids = faces.index.search(self._rows(vectors), min(k, faces.index.ntotal))
        return [
            [
                (int(i), float(np.sqrt(max(d, 0.0))))
                for i, d in zip(row_ids, row_d, strict=True)
                if i >= 0
            ]
            for row_ids, row_d in zip(ids, squared, strict=True)
        ]

    def neighbours(
        self, tenant_id: str, vector: np.ndarray, max_distance: float
    ) -> list[tuple[int, float]]:
        """Every face within max_distance of `vector` (itself included): [(seq, distance)]."""
        faces = self._tenant(tenant_id)
        with faces.lock:
            if faces.index.ntotal == 0:
                return []
            _, squared, ids = faces.index.range_search(self._rows([vector]), max_distance**2)
        found = [(int(i), float(np.sqrt(max(d, 0.0)))) for i, d in zip(ids, squared, strict=True)]
        return sorted(found, key=lambda pair: pair[1])

    def vectors(self, tenant_id: str, seqs: list[int]) -> np.ndarray:
        faces = self._tenant(tenant_id)
        with faces.lock:
            return np.stack([faces.index.reconstruct(int(s)) for s in seqs])

    def forget(self, tenant_id: str, seqs: list[int]) -> None:
        if seqs:
            faces = self._tenant(tenant_id)
            with faces.lock:
                faces.index.remove_ids(np.array(seqs, dtype="int64"))

    def _rows(self, vectors) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(vectors, dtype="float32").reshape(-1, self.dim))
