"""A Hamming-space index over 64-bit pHashes: exact radius and k-NN search.

Small sets are scanned (vectorised XOR + popcount). Large sets use multi-index hashing
(Norouzi et al.): the 64 bits are split into 3 substrings of 22, 21 and 21 bits, each with a
direct-addressed table (``offsets`` of length 2**bits + 1 into positions sorted by substring).
By the pigeonhole principle, if ``hamming(a, b) <= r`` and the per-substring radii ``r_i``
satisfy ``sum(r_i + 1) >= r + 1``, then some substring ``i`` of ``a`` and ``b`` is within
``r_i`` bits. For r = 8 that is radius 2 in each of the 3 substrings: 254 + 232 + 232 probes,
a few thousand candidates at 10M codes, each verified exactly. Results are exact, never
approximate.

Writes go to a small unindexed tail that is scanned; the tables are rebuilt when the tail
grows past ``max(tail_min, tail_fraction * size)``. Deletes are tombstones until the next
rebuild. ``to_bytes``/``from_bytes`` save the live (id, code) pairs as one ``.npy``.
"""

from __future__ import annotations

import io
import itertools
from functools import lru_cache

import numpy as np

ID_DTYPE = np.dtype("<i8")
CODE_DTYPE = np.dtype("<u8")
RECORD_DTYPE = np.dtype([("id", ID_DTYPE), ("code", CODE_DTYPE)])

# (shift, bits) of each substring, low bits first.
SUBSTRINGS: tuple[tuple[int, int], ...] = ((0, 22), (22, 21), (43, 21))
MAX_PROBES = 200_000
# Query x code pairs past which a batch search builds tables it lacks (~0.1 s of scanning).
BATCH_TABLES_MIN_CELLS = 2**25


def as_code(code: int | np.integer | str) -> np.uint64:
    """A pHash as uint64: an int (signed or unsigned 64-bit) or a 16-digit hex string."""
    if isinstance(code, str):
        return np.uint64(int(code, 16))
    value = int(code)
    if value < 0:
        value &= (1 << 64) - 1
    if value >> 64:
        raise ValueError("a pHash has 64 bits")
    return np.uint64(value)


def _as_codes(codes) -> np.ndarray:
    arr = np.asarray(codes)
    if arr.dtype == np.uint64:
        return arr.astype(CODE_DTYPE, copy=False).ravel()
    if arr.dtype == np.int64:
        return arr.view(np.uint64).astype(CODE_DTYPE, copy=False).ravel()
    return np.array([as_code(c) for c in np.ravel(arr)], dtype=CODE_DTYPE)


_BYTE_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def popcount(x: np.ndarray) -> np.ndarray:
    """Bits set in each uint64 (np.bitwise_count on numpy >= 2, a byte table before)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    x = np.ascontiguousarray(x, dtype=np.uint64)
    return _BYTE_POPCOUNT[x.view(np.uint8)].reshape(*x.shape, 8).sum(axis=-1, dtype=np.uint8)


@lru_cache(maxsize=64)
def flip_masks(bits: int, radius: int) -> np.ndarray:
    """Every ``bits``-bit mask with at most ``radius`` bits set, fewest bits first."""
    out = [0]
    for r in range(1, min(radius, bits) + 1):
        for combo in itertools.combinations(range(bits), r):
            m = 0
            for b in combo:
                m |= 1 << b
            out.append(m)
    masks = np.array(out, dtype=np.uint32)
    masks.setflags(write=False)
    return masks


def substring_radii(radius: int, m: int = len(SUBSTRINGS)) -> list[int]:
    """Per-substring radii with ``sum(r_i + 1) >= radius + 1``, as even as possible."""
    total = radius + 1  # sum of (r_i + 1)
    base, extra = divmod(total, m)
    # the first ``extra`` substrings are the widest ones, give them the larger radius
    return [max(base + (1 if i < extra else 0) - 1, -1) for i in range(m)]


def _gather_ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, e)`` for each pair, vectorised."""
    lengths = ends - starts
    keep = lengths > 0
    if not keep.any():
        return np.empty(0, dtype=np.int64)
    starts = starts[keep].astype(np.int64)
    lengths = lengths[keep].astype(np.int64)
    total = int(lengths.sum())
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(total, dtype=np.int64)


class _Tables:
    """Direct-addressed substring tables over a frozen array of codes."""

    def __init__(self, codes: np.ndarray) -> None:
        n = len(codes)
        pos_dtype = np.int32 if n < 2**31 else np.int64
        self.positions: list[np.ndarray] = []
        self.offsets: list[np.ndarray] = []
        for shift, bits in SUBSTRINGS:
            keys = ((codes >> np.uint64(shift)) & np.uint64((1 << bits) - 1)).astype(np.uint32)
            order = np.argsort(keys, kind="stable").astype(pos_dtype)
            counts = np.bincount(keys, minlength=1 << bits)
            offsets = np.zeros((1 << bits) + 1, dtype=pos_dtype)
            np.cumsum(counts, out=offsets[1:])
            self.positions.append(order)
            self.offsets.append(offsets)
            del keys, counts

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.positions) + sum(a.nbytes for a in self.offsets)

    @staticmethod
    def probes(radius: int) -> int:
        """Keys one query probes at this radius (718 at radius 8)."""
        radii = substring_radii(radius)
        return sum(len(flip_masks(bits, r)) for (_, bits), r in zip(SUBSTRINGS, radii, strict=True))

    @staticmethod
    def worth_probing(radius: int) -> bool:
        """Whether the tables beat a scan at this radius (a wide one probes too many keys)."""
        return _Tables.probes(radius) <= MAX_PROBES

    def candidates(self, code: np.uint64, radius: int) -> np.ndarray | None:
        """Positions that may be within ``radius``; None when probing would cost more than a scan."""
        if not self.worth_probing(radius):
            return None
        radii = substring_radii(radius)
        parts = []
        for (shift, bits), r, pos, off in zip(
            SUBSTRINGS, radii, self.positions, self.offsets, strict=True
        ):
            if r < 0:
                continue
            sub = np.uint32((int(code) >> shift) & ((1 << bits) - 1))
            keys = flip_masks(bits, r) ^ sub
            idx = _gather_ranges(off[keys], off[keys + 1])
            if len(idx):
                parts.append(pos[idx])
        if not parts:
            return np.empty(0, dtype=np.int64)
        return np.concatenate(parts)

    def candidates_many(self, codes: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
        """(query index, position) of every candidate of each code in ``codes`` (a row may
        repeat: a candidate can share several substrings with its query)."""
        queries, found = [], []
        for (shift, bits), r, pos, off in zip(
            SUBSTRINGS, substring_radii(radius), self.positions, self.offsets, strict=True
        ):
            if r < 0:
                continue
            masks = flip_masks(bits, r)
            subs = ((codes >> np.uint64(shift)) & np.uint64((1 << bits) - 1)).astype(np.uint32)
            keys = (subs[:, None] ^ masks[None, :]).ravel()
            starts, ends = off[keys], off[keys + 1]
            idx = _gather_ranges(starts, ends)
            lengths = (ends - starts).astype(np.int64)
            queries.append(np.repeat(np.repeat(np.arange(len(codes)), len(masks)), lengths))
            found.append(pos[idx])
        if not found:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        return np.concatenate(queries), np.concatenate(found).astype(np.int64)


class PhashIndex:
    """Exact Hamming search over (int64 id, uint64 code) pairs; ids are unique (add upserts)."""

    def __init__(
        self,
        mih_threshold: int = 50_000,
        tail_min: int = 20_000,
        tail_fraction: float = 0.05,
    ) -> None:
        self.mih_threshold = mih_threshold
        self.tail_min = tail_min
        self.tail_fraction = tail_fraction
        # the frozen part: codes/ids by position, tombstones, tables when large
        self._ids = np.empty(0, dtype=ID_DTYPE)
        self._codes = np.empty(0, dtype=CODE_DTYPE)
        self._alive = np.empty(0, dtype=bool)
        self._id_order = np.empty(0, dtype=np.int64)  # positions sorted by id
        self._sorted_ids = np.empty(0, dtype=ID_DTYPE)
        self._n_dead = 0
        self._tables: _Tables | None = None
        # the tail: small, scanned, rebuilt into the frozen part when it grows
        self._tail_ids = np.empty(0, dtype=ID_DTYPE)
        self._tail_codes = np.empty(0, dtype=CODE_DTYPE)

    # -- size --------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._ids) - self._n_dead + len(self._tail_ids)

    @property
    def uses_mih(self) -> bool:
        return self._tables is not None

    def nbytes(self) -> int:
        n = self._ids.nbytes + self._codes.nbytes + self._alive.nbytes + self._id_order.nbytes
        n += self._sorted_ids.nbytes
        n += self._tail_ids.nbytes + self._tail_codes.nbytes
        return n + (self._tables.nbytes() if self._tables is not None else 0)

    # -- writes ------------------------------------------------------------------------

    def add(self, ids, codes) -> None:
        """Add (or replace) codes; ``ids`` int64, ``codes`` uint64 (int64 bit patterns accepted)."""
        ids = np.asarray(ids, dtype=ID_DTYPE).ravel()
        codes = _as_codes(codes)
        if len(ids) != len(codes):
            raise ValueError("ids and codes differ in length")
        if len(ids) == 0:
            return
        # last write wins within the batch
        _, last = np.unique(ids[::-1], return_index=True)
        if len(last) != len(ids):
            keep = np.sort(len(ids) - 1 - last)
            ids, codes = ids[keep], codes[keep]
        self.remove(ids)
        self._tail_ids = np.concatenate([self._tail_ids, ids])
        self._tail_codes = np.concatenate([self._tail_codes, codes])
        if len(self._tail_ids) > max(self.tail_min, self.tail_fraction * len(self._ids)):
            self.rebuild()

    def remove(self, ids) -> int:
        """Remove ids (missing ones are ignored); returns how many were present."""
        ids = np.asarray(ids, dtype=ID_DTYPE).ravel()
        if len(ids) == 0:
            return 0
        removed = 0
        if len(self._tail_ids):
            hit = np.isin(self._tail_ids, ids)
            if hit.any():
                removed += int(hit.sum())
                self._tail_ids = self._tail_ids[~hit]
                self._tail_codes = self._tail_codes[~hit]
        if len(self._ids):
            sorted_ids = self._sorted_ids
            at = np.searchsorted(sorted_ids, ids)
            at = np.minimum(at, len(sorted_ids) - 1)
            found = sorted_ids[at] == ids
            pos = self._id_order[at[found]]
            pos = pos[self._alive[pos]]
            if len(pos):
                pos = np.unique(pos)
                self._alive[pos] = False
                self._n_dead += len(pos)
                removed += len(pos)
            if self._n_dead > max(self.tail_min, self.tail_fraction * len(self._ids)):
                self.rebuild()
        return removed

    def rebuild(self) -> None:
        """Fold the tail and tombstones into a freshly built frozen part."""
        ids, codes = self.items()
        self._tail_ids = np.empty(0, dtype=ID_DTYPE)
        self._tail_codes = np.empty(0, dtype=CODE_DTYPE)
        self._set_frozen(ids, codes)

    def _set_frozen(self, ids: np.ndarray, codes: np.ndarray) -> None:
        self._tables = None  # free the old tables before building new ones
        self._ids = np.ascontiguousarray(ids, dtype=ID_DTYPE)
        self._codes = np.ascontiguousarray(codes, dtype=CODE_DTYPE)
        self._alive = np.ones(len(ids), dtype=bool)
        self._n_dead = 0
        self._id_order = np.argsort(self._ids, kind="stable")
        self._sorted_ids = self._ids[self._id_order]
        if len(ids) >= self.mih_threshold:
            self._tables = _Tables(self._codes)

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """The live (ids, codes)."""
        if self._n_dead:
            ids, codes = self._ids[self._alive], self._codes[self._alive]
        else:
            ids, codes = self._ids, self._codes
        if len(self._tail_ids):
            ids = np.concatenate([ids, self._tail_ids])
            codes = np.concatenate([codes, self._tail_codes])
        return ids, codes

    def get(self, media_id: int) -> int | None:
        """The code stored for ``media_id`` (as unsigned int), or None."""
        hit = np.flatnonzero(self._tail_ids == media_id)
        if len(hit):
            return int(self._tail_codes[hit[-1]])
        if len(self._ids):
            sorted_ids = self._sorted_ids
            at = int(np.searchsorted(sorted_ids, media_id))
            while at < len(sorted_ids) and sorted_ids[at] == media_id:
                pos = self._id_order[at]
                if self._alive[pos]:
                    return int(self._codes[pos])
                at += 1
        return None

    # -- reads -------------------------------------------------------------------------

    def _radius_arrays(self, code: np.uint64, radius: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.uint64(code)
        out_ids: list[np.ndarray] = []
        out_d: list[np.ndarray] = []
        if len(self._ids):
            cand = self._tables.candidates(q, radius) if self._tables is not None else None
            if cand is None:
                d = popcount(self._codes ^ q)
                keep = d <= radius
                if self._n_dead:
                    keep &= self._alive
                pos = np.flatnonzero(keep)
                out_ids.append(self._ids[pos])
                out_d.append(d[pos])
            elif len(cand):
                d = popcount(self._codes[cand] ^ q)
                keep = d <= radius
                if self._n_dead:
                    keep &= self._alive[cand]
                pos, first = np.unique(cand[keep], return_index=True)
                out_ids.append(self._ids[pos])
                out_d.append(d[keep][first])
        if len(self._tail_ids):
            d = popcount(self._tail_codes ^ q)
            keep = d <= radius
            out_ids.append(self._tail_ids[keep])
            out_d.append(d[keep])
        if not out_ids:
            return np.empty(0, dtype=ID_DTYPE), np.empty(0, dtype=np.uint8)
        ids = np.concatenate(out_ids)
        dist = np.concatenate(out_d)
        order = np.lexsort((ids, dist))
        return ids[order], dist[order]

    def search_radius(self, code, radius: int) -> list[tuple[int, int]]:
        """Every (id, distance) within ``radius`` bits of ``code``, nearest first (ties by id)."""
        if radius < 0:
            return []
        ids, dist = self._radius_arrays(as_code(code), min(int(radius), 64))
        return list(zip(ids.tolist(), dist.tolist(), strict=True))

    def search_radius_many(
        self, codes, radius: int, batch: int = 2048
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every (query index, id, distance) within ``radius`` bits of each of ``codes``, in
        no particular order: what ``search_radius`` of each gives, in a few numpy passes."""
        queries = _as_codes(codes)
        radius = min(int(radius), 64)
        out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        if radius < 0:
            queries = queries[:0]
        parts = []  # (ids, codes, alive or None, tables or None): the frozen part, the tail
        if len(self._ids):
            tables = self._tables
            if tables is None:
                tables = _tables_for_batch(self._codes, len(queries), radius)
            parts.append((self._ids, self._codes, self._alive if self._n_dead else None, tables))
        if len(self._tail_ids):
            tables = _tables_for_batch(self._tail_codes, len(queries), radius)
            parts.append((self._tail_ids, self._tail_codes, None, tables))
        for start in range(0, len(queries), batch):
            block = queries[start : start + batch]
            out.extend(_hits(block, radius, start, *part) for part in parts)
        if not out:
            return np.empty(0, np.int64), np.empty(0, ID_DTYPE), np.empty(0, np.uint8)
        q, ids, dist = (np.concatenate(part) for part in zip(*out, strict=True))
        return q, ids, dist

    def knn(self, code, k: int) -> list[tuple[int, int]]:
        """The ``k`` nearest (id, distance), nearest first (ties by id)."""
        if k <= 0 or len(self) == 0:
            return []
        q = as_code(code)
        if self._tables is not None:
            for r in (4, 8, 12):
                ids, dist = self._radius_arrays(q, r)
                if len(ids) >= k:
                    return list(zip(ids[:k].tolist(), dist[:k].tolist(), strict=True))
        ids, codes = self.items()
        dist = popcount(codes ^ q)
        if k < len(ids):
            part = np.argpartition(dist, k - 1)[:k]
            kth = dist[part].max()
            part = np.flatnonzero(dist <= kth)  # keep ties so the id order is deterministic
            ids, dist = ids[part], dist[part]
        order = np.lexsort((ids, dist))[:k]
        return list(zip(ids[order].tolist(), dist[order].tolist(), strict=True))

    # -- persistence -------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        ids, codes = self.items()
        rec = np.empty(len(ids), dtype=RECORD_DTYPE)
        rec["id"] = ids
        rec["code"] = codes
        buf = io.BytesIO()
        np.save(buf, rec, allow_pickle=False)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, **kwargs) -> PhashIndex:
        rec = np.load(io.BytesIO(data), allow_pickle=False)
        if rec.dtype != RECORD_DTYPE:
            raise ValueError(f"unexpected pHash snapshot dtype {rec.dtype}")
        index = cls(**kwargs)
        index._set_frozen(np.array(rec["id"]), np.array(rec["code"]))
        return index


def _tables_for_batch(codes: np.ndarray, queries: int, radius: int) -> _Tables | None:
    """Tables built for one batch search where they beat scanning: the index keeps none below
    mih_threshold codes, nor for its tail, and a batch of every item's codes (a search for
    duplicate pairs) scanning them is quadratic (20,000 items: 10 s of scan, 2 s of probing).
    A query's scan costs ~3 ns a code, its probes ~18 ns each; building costs ~30 ms."""
    if not _Tables.worth_probing(radius) or len(codes) < 6 * _Tables.probes(radius):
        return None
    if queries * len(codes) < BATCH_TABLES_MIN_CELLS:
        return None
    return _Tables(codes)


def _hits(block, radius: int, start: int, ids, codes, alive, tables):
    """Every (query index + start, id, distance) within ``radius`` among ``codes``: through
    ``tables`` where given and worth probing at this radius, else a scan."""
    if tables is None or not tables.worth_probing(radius):
        return _scan(block, ids, codes, radius, start, alive)
    q, pos = tables.candidates_many(block, radius)
    dist = popcount(codes[pos] ^ block[q])
    keep = dist <= radius
    if alive is not None:
        keep &= alive[pos]
    q, pos, dist = q[keep], pos[keep], dist[keep]
    _, first = np.unique(q * len(codes) + pos, return_index=True)
    return q[first] + start, ids[pos[first]], dist[first]


def _scan(block, ids, codes, radius: int, start: int, alive=None, cells: int = 2**24):
    """Every (query index + start, id, distance) within ``radius``: XOR-popcounts of each query
    against every code, a slice of codes at a time."""
    out_q, out_ids, out_d = [], [], []
    step = max(1, cells // max(1, len(block)))
    for at in range(0, len(codes), step):
        dist = popcount(block[:, None] ^ codes[None, at : at + step])
        near = dist <= radius
        if alive is not None:
            near &= alive[None, at : at + step]
        q, pos = np.nonzero(near)
        out_q.append(q + start)
        out_ids.append(ids[at + pos])
        out_d.append(dist[q, pos])
    if not out_q:
        return np.empty(0, np.int64), np.empty(0, ID_DTYPE), np.empty(0, np.uint8)
    return np.concatenate(out_q), np.concatenate(out_ids), np.concatenate(out_d)
