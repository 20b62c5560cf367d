"""The indices a Matcher serves: one HybridIndex per (tenant, collection), kept current.

Ray-free. A scope starts from the newest snapshot in the object store, then replays the
catalog's change log after the snapshot's `last_seq`; `sync()` keeps replaying (so several
replicas converge on the same contents) and swaps in a newer snapshot when the manifest names
one (a reindex), whole, so no query ever sees half an index.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np

from busque.db.follow import IdFollower
from busque.index import snapshot
from busque.index.checked_pairs import PairChecker
from busque.index.device import check_device
from busque.index.duplicate_pairs import PairCache, PairQuery
from busque.index.hybrid import HybridIndex
from busque.media.catalog import Catalog, bytes_to_vector
from busque.media.pair_checks import PairChecks
from busque.storage import ObjectStore

logger = logging.getLogger("busque.index")


@dataclass(frozen=True)
class NearDuplicate:
    """When a match counts as a near duplicate (bench/quality.py measures these defaults)."""

    max_phash_distance: int = 8
    min_cosine: float = 0.8
    min_hybrid_score: float = 0.6

    @classmethod
    def from_settings(cls, index) -> NearDuplicate:
        """The thresholds of `index` settings (busque.config.IndexSettings)."""
        return cls(
            max_phash_distance=index.duplicate_radius,
            min_cosine=index.near_duplicate_cosine,
            min_hybrid_score=index.near_duplicate_score,
        )

    def __call__(self, match, mode: str) -> bool:
        if match.exact_duplicate:
            return True
        if mode == "phash":
            return (
                match.phash_distance is not None and match.phash_distance <= self.max_phash_distance
            )
        if mode == "visual":
            return match.distance is not None and 1 - match.distance >= self.min_cosine
        return match.score >= self.min_hybrid_score


@dataclass
class Scope:
    index: HybridIndex
    follow: IdFollower  # the change log, read in order
    version: str | None
    changes_since_snapshot: int = 0
    pairs: PairCache | None = None  # the duplicate pairs asked for, kept current

    @property
    def last_seq(self) -> int:
        return self.follow.last_id


class LiveIndex:
    def __init__(
        self,
        catalog: Catalog,
        objects: ObjectStore,
        dim: int,
        *,
        snapshot_every: int = 1000,
        keep_snapshots: int = 3,
        gap_s: float = 10.0,
        index_options: dict | None = None,
        near_duplicate: NearDuplicate | None = None,
        device: str = "cpu",
        min_pixel_agreement: float | None = None,
        pair_checks: PairChecks | None = None,
    ):
        check_device(device)  # a Matcher without the GPU it was told to use fails at start
        self.device = device
        self.catalog = catalog
        self.objects = objects
        self.dim = dim
        self.snapshot_every = snapshot_every
        self.keep_snapshots = keep_snapshots
        self.gap_s = gap_s
        self.index_options = index_options or {}
        self.near_duplicate = near_duplicate or NearDuplicate()
        self.min_pixel_agreement = min_pixel_agreement  # None: pairs are not checked
        self.pair_checks = pair_checks
        self.scopes: dict[tuple[str, str], Scope] = {}
        self._lock = threading.RLock()

    def scope(self, tenant: str, collection: str) -> Scope:
        key = (tenant, collection)
        with self._lock:
            if key not in self.scopes:
                self.scopes[key] = self._open(tenant, collection)
            return self.scopes[key]

    def _open(self, tenant: str, collection: str) -> Scope:
        loaded = snapshot.load(self.objects, tenant, collection)
        if loaded is None:
            scope = Scope(
                HybridIndex(self.dim, **self.index_options), IdFollower(0, gap_s=self.gap_s), None
            )
        else:
            index, last_seq = loaded
            manifest = snapshot.read_manifest(self.objects, tenant, collection) or {}
            scope = Scope(index, IdFollower(last_seq, gap_s=self.gap_s), manifest.get("version"))
        scope.index.vectors.place(self.device)
        self._replay(tenant, collection, scope)
        logger.info(
            "index %s/%s: %d items (snapshot %s)",
            tenant,
            collection,
            len(scope.index),
            scope.version,
        )
        return scope

    def _replay(self, tenant: str, collection: str, scope: Scope) -> int:
        follow = scope.follow
        changes = self.catalog.changes_since(
            tenant, collection, follow.last_id, follow.to_recheck()
        )
        for change in changes:
            follow.saw(change["id"])
            if change["op"] == "add" and change["embedding"] is not None:
                scope.index.add(
                    change["index_id"],
                    bytes_to_vector(change["embedding"]),
                    change["phash"],
                    change["sha256"],
                )
            elif change["op"] == "remove":
                scope.index.remove(change["index_id"])
        scope.changes_since_snapshot += len(changes)
        return len(changes)

    def sync(self) -> None:
        """Catch up every open scope with the change log; take a newer snapshot if published."""
        with self._lock:
            keys = list(self.scopes)
        for tenant, collection in keys:
            scope = self.scopes[(tenant, collection)]
            manifest = snapshot.read_manifest(self.objects, tenant, collection)
            # Versions sort by time: a newer one (a reindex, or a peer's snapshot) replaces ours.
            newer = manifest and (scope.version is None or manifest["version"] > scope.version)
            if newer:
                fresh = self._open(tenant, collection)  # built aside, swapped in whole
                with self._lock:
                    self.scopes[(tenant, collection)] = fresh
                continue
            with self._lock:
                self._replay(tenant, collection, scope)
            if scope.changes_since_snapshot >= self.snapshot_every:
                self.save(tenant, collection)

    def sizes(self) -> dict[tuple[str, str], int]:
        """Items in each open (tenant, collection) index now."""
        with self._lock:
            return {key: len(scope.index) for key, scope in self.scopes.items()}

    def add(
        self,
        tenant: str,
        collection: str,
        index_id: int,
        vector: np.ndarray,
        phash: int,
        sha256: str,
    ) -> None:
        """Apply an addition at once (the change log brings it to the other replicas)."""
        scope = self.scope(tenant, collection)
        with self._lock:
            scope.index.add(index_id, vector, phash, sha256)

    def remove(self, tenant: str, collection: str, index_id: int) -> None:
        scope = self.scope(tenant, collection)
        with self._lock:
            scope.index.remove(index_id)

    def search(self, tenant: str, collection: str, **query) -> list[dict]:
        """Matches, best first, each flagged `near_duplicate` by the mode's own threshold."""
        scope = self.scope(tenant, collection)
        mode = query.get("mode", "hybrid")
        return [
            m.to_dict() | {"near_duplicate": self.near_duplicate(m, mode)}
            for m in scope.index.search(**query)
        ]

    def duplicate_pairs(
        self,
        tenant: str,
        collection: str,
        radius: int,
        min_cosine: float | None,
        k: int = 16,
        min_score: float | None = None,
    ) -> list[tuple]:
        """Every pair of items within `radius` pHash bits, also once one of them is turned or
        mirrored (the catalog keeps each photo's TRANSFORMS' pHashes), or (min_cosine set)
        whose embeddings are at least that alike among each item's `k` nearest: (a, b, pHash
        distance or None, cosine or None, the transform that matched or None, the hybrid
        score of a pair kept by min_score or None), a < b. From the indices
        (busque.index.duplicate_pairs), kept current between calls."""
        query = self._pair_query(radius, min_cosine, k, min_score)
        return _as_rows(self._pair_cache(tenant, collection).pairs(query))

    def duplicate_pairs_answer(
        self,
        tenant: str,
        collection: str,
        radius: int,
        min_cosine: float | None,
        *,
        known_version: str | None = None,
        wait_s: float | None = None,
        k: int = 16,
        min_score: float | None = None,
    ) -> dict:
        """duplicate_pairs, waiting at most `wait_s` for them to be up to date: {"version",
        "complete" (False: still searching, these are the last pairs found), "pairs" (None
        when the caller has them: the version is `known_version`, or "changes" says what
        changed since it, {"added", "removed"} rows, when it is the answer before)}."""
        query = self._pair_query(radius, min_cosine, k, min_score)
        found = self._pair_cache(tenant, collection).answer(query, wait_s)
        out = {"version": found.version, "complete": found.complete, "pairs": None}
        if found.version == known_version:
            return out
        if known_version is not None and known_version == found.previous_version:
            out["changes"] = _changes(found.previous_pairs, found.pairs)
        else:
            out["pairs"] = _as_rows(found.pairs)
        return out

    def _pair_query(self, radius, min_cosine, k, min_score) -> PairQuery:
        w_visual = self.index_options.get("w_visual", 0.7)  # the hybrid score's, as search's
        return PairQuery(radius, min_cosine, k, min_score, w_visual)

    def _pair_cache(self, tenant: str, collection: str) -> PairCache:
        scope = self.scope(tenant, collection)
        with self._lock:
            if scope.pairs is None:
                scope.pairs = PairCache(
                    scope.index,
                    lambda ids: self.catalog.phash_variants(tenant, collection, ids),
                    check=self._pair_checker(tenant),
                )
            return scope.pairs

    def _pair_checker(self, tenant: str) -> PairChecker | None:
        if self.min_pixel_agreement is None:
            return None

        def sources(ids):
            rows = {}
            for at in range(0, len(ids), 500):
                rows |= self.catalog.by_index_ids(tenant, ids[at : at + 500])
            return {i: (row["sha256"], row["normalized_key"]) for i, row in rows.items()}

        return PairChecker(sources, self.objects.get, self.min_pixel_agreement, self.pair_checks)

    def save(self, tenant: str, collection: str) -> str:
        scope = self.scope(tenant, collection)
        with self._lock:
            version = snapshot.save(
                self.objects,
                tenant,
                collection,
                scope.index,
                scope.last_seq,
                keep=self.keep_snapshots,
            )
            scope.version = version
            scope.changes_since_snapshot = 0
        return version


def _as_rows(found) -> list[tuple]:
    """(a, b, pHash distance, cosine, transform, hybrid score), a < b."""
    return [_row(pair, entry) for pair, entry in sorted(found.items())]


def _row(pair: tuple[int, int], entry: list) -> tuple:
    return (*pair, *entry, None)[:6]


def _changes(before, now) -> dict:
    """The rows gone from `before` and the rows new in `now` (a pair whose entry changed is
    in both)."""
    return {
        "removed": [_row(p, e) for p, e in before.items() if now.get(p) != e],
        "added": [_row(p, e) for p, e in now.items() if before.get(p) != e],
    }
