"""Cosine similarity search over embeddings with FAISS, exact when small, approximate when large.

Vectors are L2-normalised on the way in (and queries too), so inner product is cosine.

Kinds:
- ``flat``: ``IndexIDMap2(IndexFlatIP)``, exact; remove is real.
- ``hnsw``: ``IndexIDMap2(IndexHNSW*)``. HNSW cannot delete, so a removed entry's id in the
  id map is overwritten with -1 (FAISS drops -1 labels from results) and searches over-fetch
  by the number of such dead entries; the graph is rebuilt once dead entries pass
  ``compact_fraction``.
- ``ivf``: ``IndexIVF*`` with its own ids and a hash-table direct map, so remove and
  reconstruct work. Trained on the vectors present when it is built, and retrained when the
  index grows ``retrain_factor`` times past that.
- ``auto``: ``flat`` up to ``flat_threshold`` vectors, then ``large_kind``.

``storage`` picks the stored codec for hnsw/ivf: ``flat`` (float32), ``fp16``, ``sq8``
(1 byte a dimension), or ``pq`` (ivf only, ``pq_m`` bytes a vector; lossy, lower recall).

``place("cuda")`` searches a GPU copy of a flat or ivf index (busque.index.device). Writes go to
the CPU index, which stays the one that is saved; the copy is made again on the first search
after a write, so batch writes between searches where the index is large.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import asdict, dataclass

import faiss
import numpy as np

from busque.index import device

MAGIC = b"BVX1"
KINDS = ("auto", "flat", "hnsw", "ivf")
STORAGES = ("flat", "fp16", "sq8", "pq")


@dataclass
class VectorIndexConfig:
    dim: int
    kind: str = "auto"
    flat_threshold: int = 20_000
    large_kind: str = "hnsw"
    storage: str = "flat"
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 128
    nlist: int | None = None
    nprobe: int = 32
    pq_m: int = 64
    train_size: int | None = None  # ivf k-means sample; default max(64 * nlist, 10_000)
    kmeans_niter: int = 10
    retrain_factor: float | None = 8.0
    compact_fraction: float = 0.2

    def validate(self) -> None:
        if self.dim <= 0:
            raise ValueError("dim must be positive")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        if self.large_kind not in ("hnsw", "ivf"):
            raise ValueError("large_kind must be 'hnsw' or 'ivf'")
        if self.storage not in STORAGES:
            raise ValueError(f"storage must be one of {STORAGES}")
        if self.storage == "pq" and self.dim % self.pq_m:
            raise ValueError("pq_m must divide dim")


def normalize(x: np.ndarray, dim: int) -> np.ndarray:
    x = np.array(x, dtype=np.float32, copy=True, order="C")
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"vectors must have shape (n, {dim})")
    if not np.isfinite(x).all():
        raise ValueError("vectors contain NaN or infinity")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    return x


def _as_ids(ids) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(ids, dtype=np.int64).ravel())


class VectorIndex:
    def __init__(self, dim: int, kind: str = "auto", **options) -> None:
        self.config = VectorIndexConfig(dim=dim, kind=kind, **options)
        self.config.validate()
        self._active = "flat" if kind == "auto" else kind
        self._index: faiss.Index | None = None
        self._n_dead = 0  # hnsw: entries whose id was overwritten with -1
        self._trained_n = 0  # ivf: how many vectors it was trained on
        self._device = "cpu"
        self._gpu_copy: faiss.Index | None = None  # made on the first search after a write
        if self._active == "flat":
            self._index = self._new_flat()

    # -- introspection -----------------------------------------------------------------

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def active_kind(self) -> str:
        """The structure in use now: flat, hnsw or ivf."""
        return self._active

    def __len__(self) -> int:
        return 0 if self._index is None else int(self._index.ntotal) - self._n_dead

    @property
    def device(self) -> str:
        return self._device

    def place(self, where: str) -> None:
        """Search on "cpu" or from a copy on "cuda" (raises when this process has no GPU)."""
        device.check_device(where)
        self._device = where
        self._gpu_copy = None

    # -- construction ------------------------------------------------------------------

    def _new_flat(self) -> faiss.Index:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))

    def _codec(self) -> str:
        return {"flat": "Flat", "fp16": "SQfp16", "sq8": "SQ8", "pq": f"PQ{self.config.pq_m}"}[
            self.config.storage
        ]

    def _build(self, kind: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Replace the index with a fresh ``kind`` one holding (already normalised) vectors."""
        self._gpu_copy = None
        cfg = self.config
        if kind == "flat":
            index = self._new_flat()
            self._trained_n = 0
        elif kind == "hnsw":
            if cfg.storage == "pq":
                raise ValueError("storage 'pq' is for ivf only")
            spec = f"HNSW{cfg.hnsw_m}" + ("" if cfg.storage == "flat" else f",{self._codec()}")
            inner = faiss.index_factory(self.dim, spec, faiss.METRIC_INNER_PRODUCT)
            faiss.downcast_index(inner).hnsw.efConstruction = cfg.ef_construction
            if not inner.is_trained:
                inner.train(_sample(vectors, 100_000))
            index = faiss.IndexIDMap2(inner)
            self._trained_n = 0
        elif kind == "ivf":
            n = len(vectors)
            nlist = cfg.nlist or int(min(max(4 * math.sqrt(max(n, 1)), 16), 65_536))
            nlist = max(1, min(nlist, n // 39 if n >= 39 else 1))
            index = faiss.index_factory(
                self.dim, f"IVF{nlist},{self._codec()}", faiss.METRIC_INNER_PRODUCT
            )
            if n == 0:
                raise ValueError("an ivf index is trained on vectors: build it with some")
            faiss.extract_index_ivf(index).cp.niter = cfg.kmeans_niter
            if cfg.storage == "pq":
                ivfpq = faiss.downcast_index(index)
                ivfpq.do_polysemous_training = False
                ivfpq.pq.cp.niter = cfg.kmeans_niter
            index.train(_sample(vectors, cfg.train_size or max(nlist * 64, 10_000)))
            faiss.extract_index_ivf(index).set_direct_map_type(faiss.DirectMap.Hashtable)
            self._trained_n = n
        else:
            raise ValueError(kind)
        for start in range(0, len(ids), 100_000):
            index.add_with_ids(vectors[start : start + 100_000], ids[start : start + 100_000])
        self._index = index
        self._active = kind
        self._n_dead = 0

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """The live (ids, vectors), as stored (lossy for sq8/pq)."""
        return self._all()

    def _all(self) -> tuple[np.ndarray, np.ndarray]:
        """Live (ids, vectors) as stored (lossy for sq8/pq)."""
        index = self._index
        if index is None or index.ntotal == 0:
            return np.empty(0, np.int64), np.empty((0, self.dim), np.float32)
        if self._active in ("flat", "hnsw"):
            ids = faiss.vector_to_array(index.id_map).astype(np.int64)
            vecs = index.index.reconstruct_n(0, index.ntotal)
            keep = ids >= 0
            return ids[keep], vecs[keep]
        ivf = faiss.extract_index_ivf(index)
        invlists = ivf.invlists
        ids = []
        for lst in range(ivf.nlist):
            size = invlists.list_size(lst)
            if size:
                ids.append(faiss.rev_swig_ptr(invlists.get_ids(lst), size).copy())
        all_ids = np.concatenate(ids) if ids else np.empty(0, np.int64)
        vecs = np.empty((len(all_ids), self.dim), np.float32)
        for start in range(0, len(all_ids), 100_000):
            part = all_ids[start : start + 100_000]
            vecs[start : start + len(part)] = index.reconstruct_batch(part)
        return all_ids, vecs

    def rebuild(self, kind: str | None = None) -> None:
        """Rebuild (retrain, drop dead entries), optionally switching to ``kind``."""
        ids, vecs = self._all()
        target = kind or self._active
        if target == "ivf" and len(ids) == 0:
            target = "flat"
        self._build(target, ids, vecs)

    # -- writes ------------------------------------------------------------------------

    def add(self, ids, vectors) -> None:
        """Add (or replace) vectors under int64 ``ids``."""
        ids = _as_ids(ids)
        vectors = normalize(vectors, self.dim)
        if len(ids) != len(vectors):
            raise ValueError("ids and vectors differ in length")
        if len(ids) == 0:
            return
        self._gpu_copy = None
        _, last = np.unique(ids[::-1], return_index=True)
        if len(last) != len(ids):  # last write wins within the batch
            keep = np.sort(len(ids) - 1 - last)
            ids, vectors = ids[keep], vectors[keep]
        if self._index is None:  # ivf/hnsw requested and still empty: build on first data
            self._build(self._active, ids, vectors)
            return
        self.remove(ids)
        self._index.add_with_ids(vectors, ids)
        cfg = self.config
        n = len(self)
        if cfg.kind == "auto" and self._active == "flat" and n > cfg.flat_threshold:
            self.rebuild(cfg.large_kind)
        elif (
            self._active == "ivf"
            and cfg.retrain_factor
            and n > cfg.retrain_factor * max(self._trained_n, 1)
        ):
            self.rebuild()

    def remove(self, ids) -> int:
        """Remove ids (missing ones ignored); returns how many were present."""
        ids = _as_ids(ids)
        if self._index is None or len(ids) == 0 or self._index.ntotal == 0:
            return 0
        self._gpu_copy = None
        if self._active == "hnsw":
            id_map = faiss.rev_swig_ptr(self._index.id_map.data(), self._index.id_map.size())
            hit = np.flatnonzero(np.isin(id_map, ids[ids >= 0]))
            if len(hit) == 0:
                return 0
            id_map[hit] = -1
            self._n_dead += len(hit)
            self._index.construct_rev_map()
            if self._n_dead > self.config.compact_fraction * self._index.ntotal:
                self.rebuild()
            return len(hit)
        if self._active == "ivf":  # the hash-table direct map only takes an IDSelectorArray
            ids = np.unique(ids)
            return int(self._index.remove_ids(faiss.IDSelectorArray(len(ids), faiss.swig_ptr(ids))))
        return int(self._index.remove_ids(faiss.IDSelectorBatch(ids)))

    # -- reads -------------------------------------------------------------------------

    def _searched(self, k: int) -> tuple[faiss.Index, object]:
        """The index a search of ``k`` results runs on, and its search parameters."""
        on_gpu = (
            self._device == "cuda" and self._active in device.GPU_KINDS and k <= device.GPU_MAX_K
        )
        if not on_gpu:
            return self._index, self._params(k)
        if self._gpu_copy is None:
            self._gpu_copy = device.to_gpu(self._index, self.config.nprobe)
        return self._gpu_copy, None  # nprobe is set on the copy

    def _params(self, k: int):
        if self._active == "hnsw":
            return faiss.SearchParametersHNSW(efSearch=max(self.config.ef_search, k))
        if self._active == "ivf":
            return faiss.SearchParametersIVF(nprobe=self.config.nprobe)
        return None

    def search(self, queries, k: int, exclude=None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` by cosine for each query: (scores (nq, k) float32, ids (nq, k) int64).

        Missing results are id -1 with score -inf. ``exclude`` ids never come back.
        """
        q = normalize(queries, self.dim)
        nq = len(q)
        scores = np.full((nq, k), -np.inf, dtype=np.float32)
        out = np.full((nq, k), -1, dtype=np.int64)
        if k <= 0 or self._index is None or len(self) == 0:
            return scores, out
        excl = _as_ids(exclude) if exclude is not None else np.empty(0, np.int64)
        total = int(self._index.ntotal)
        fetch = min(k + len(excl) + self._n_dead, total)
        while True:
            index, params = self._searched(fetch)
            d, i = index.search(q, fetch, params=params)
            valid = i >= 0
            if len(excl):
                valid &= ~np.isin(i, excl)
            if valid.sum(axis=1).min() >= min(k, len(self)) or fetch >= total:
                break
            fetch = min(fetch * 2, total)
        for row in range(nq):
            sel = np.flatnonzero(valid[row])[:k]
            scores[row, : len(sel)] = d[row, sel]
            out[row, : len(sel)] = i[row, sel]
        return scores, out

    def reconstruct(self, media_id: int) -> np.ndarray | None:
        """The stored (normalised) vector of ``media_id``, or None."""
        if self._index is None or media_id < 0:
            return None
        try:
            return self._index.reconstruct(int(media_id))
        except RuntimeError:
            return None

    def contains(self, media_id: int) -> bool:
        return self.reconstruct(media_id) is not None

    # -- persistence -------------------------------------------------------------------

    def serialize(self) -> bytes:
        header = json.dumps(
            {
                "config": asdict(self.config),
                "active": self._active,
                "n_dead": self._n_dead,
                "trained_n": self._trained_n,
                "empty": self._index is None,
            }
        ).encode()
        body = b"" if self._index is None else faiss.serialize_index(self._index).tobytes()
        return MAGIC + struct.pack("<I", len(header)) + header + body

    @classmethod
    def deserialize(cls, data: bytes) -> VectorIndex:
        if data[:4] != MAGIC:
            raise ValueError("not a busque vector index")
        (n,) = struct.unpack("<I", data[4:8])
        header = json.loads(data[8 : 8 + n])
        cfg = header["config"]
        self = cls(cfg.pop("dim"), cfg.pop("kind"), **cfg)
        self._active = header["active"]
        self._n_dead = header["n_dead"]
        self._trained_n = header["trained_n"]
        if header["empty"]:
            self._index = None
        else:
            buf = np.frombuffer(data, dtype=np.uint8, offset=8 + n)
            self._index = faiss.deserialize_index(buf)
        return self


def _sample(x: np.ndarray, n: int) -> np.ndarray:
    if len(x) <= n:
        return x
    pick = np.random.default_rng(0).choice(len(x), n, replace=False)
    return x[np.sort(pick)]
