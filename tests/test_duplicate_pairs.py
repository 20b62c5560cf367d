"""Duplicate pairs from the indices, and the cache that keeps them current: after items come and
go, its answer is exactly what searching everything again gives (codes, turns, embeddings)."""

from __future__ import annotations

import copy
import threading

import numpy as np

from busque.index.duplicate_pairs import PairCache, PairQuery, find_pairs
from busque.index.hybrid import HybridIndex
from busque.media.phash import TRANSFORMS

DIM = 32
QUERY = PairQuery(radius=6, min_cosine=0.95, k=8)


def flip(code: int, bits: int, rng) -> int:
    for bit in rng.choice(64, bits, replace=False):
        code ^= 1 << int(bit)
    return code


class Library:
    """Random items, a third of them near copies of another (a few bits off, an alike vector),
    and some whose turned code is near another item's code (a rotated copy)."""

    def __init__(self, seed: int = 3, edited: float = 0.0):
        self.rng = np.random.default_rng(seed)
        self.edited = edited  # the share of heavier edits: alike vectors, 8-30 bits off
        self.index = HybridIndex(DIM)
        self.variants: dict[int, list[int]] = {}
        self.next_id = 1

    def add(self, n: int) -> list[int]:
        rng, added = self.rng, []
        for _ in range(n):
            i, self.next_id = self.next_id, self.next_id + 1
            existing = self.index.ids()
            vector = rng.normal(size=DIM).astype(np.float32)
            code = int(rng.integers(0, 2**63))
            turns = [int(rng.integers(0, 2**63)) for _ in TRANSFORMS]
            roll = rng.random()
            if existing and roll < 0.3:  # a near copy
                other = int(rng.choice(existing))
                code = flip(self.index.phashes.get(other), int(rng.integers(0, 5)), rng)
                vector = self.index.vectors.reconstruct(other) + rng.normal(0, 0.02, DIM)
            elif existing and roll > 1 - self.edited:  # a heavier edit
                other = int(rng.choice(existing))
                code = flip(self.index.phashes.get(other), int(rng.integers(8, 30)), rng)
                vector = self.index.vectors.reconstruct(other) + rng.normal(0, 0.09, DIM)
            elif existing and roll < 0.45:  # turned, its turn near another's code
                other = int(rng.choice(existing))
                turn = int(rng.integers(0, len(TRANSFORMS)))
                turns[turn] = flip(self.index.phashes.get(other), int(rng.integers(0, 4)), rng)
            self.index.add(i, vector, code)
            self.variants[i] = [c - 2**64 if c >= 2**63 else c for c in turns]
            added.append(i)
        return added

    def remove(self, n: int) -> None:
        for i in self.rng.choice(self.index.ids(), n, replace=False).tolist():
            self.index.remove(i)
            del self.variants[i]

    def variants_of(self, ids):
        return {i: self.variants[i] for i in (self.variants if ids is None else ids)}


def test_pairs_name_why_and_how_close():
    library = Library()
    library.add(60)
    found = find_pairs(library.index, library.variants, QUERY)
    assert found, "the planted copies are found"
    for (a, b), (distance, cosine, transform) in found.items():
        assert a < b
        assert distance is not None or cosine is not None
        if distance is not None and transform is None:
            codes = (library.index.phashes.get(a), library.index.phashes.get(b))
            assert bin(codes[0] ^ codes[1]).count("1") == distance <= QUERY.radius
        if transform is not None:
            assert transform in TRANSFORMS
    assert any(t is not None for _, _, t in found.values())  # a turned copy found


def test_the_cache_stays_exactly_current_as_items_come_and_go():
    library = Library(seed=11)
    library.add(400)
    cache = PairCache(library.index, library.variants_of)
    first = cache.pairs(QUERY)
    assert first == find_pairs(library.index, library.variants, QUERY)
    assert cache.pairs(QUERY) is first  # unchanged index: the same answer, no search
    held = copy.deepcopy(first)

    for step in range(6):  # a review session: items trashed; an import: a few added
        library.remove(7)
        library.add(5 + step)
        assert cache.pairs(QUERY) == find_pairs(library.index, library.variants, QUERY), step
    assert first == held  # a reader's answer stays whole while later ones are made

    library.add(200)  # more than REBUILD_SHARE new: searched again whole
    assert cache.pairs(QUERY) == find_pairs(library.index, library.variants, QUERY)
    other = PairQuery(radius=2, min_cosine=None)
    assert cache.pairs(other) == find_pairs(library.index, library.variants, other)
    for radius in range(10):  # thresholds tried one after another: the oldest answers go
        cache.pairs(PairQuery(radius=radius, min_cosine=None))
    assert len(cache.answers) == 4 and PairQuery(radius=9, min_cosine=None) in cache.answers


def test_an_ask_that_stops_waiting_gets_the_last_pairs_until_the_search_ends():
    library = Library(seed=5)
    library.add(100)
    gate = threading.Event()

    def slow_variants(ids):  # the search reads the turns' codes first: it waits here
        assert gate.wait(30)
        return library.variants_of(ids)

    cache = PairCache(library.index, slow_variants)
    nothing_yet = cache.answer(QUERY, wait_s=0.05)
    assert (nothing_yet.pairs, nothing_yet.complete) == ({}, False)
    gate.set()
    first = cache.answer(QUERY, wait_s=None)
    assert first.complete and first.pairs == find_pairs(library.index, library.variants, QUERY)
    assert cache.answer(QUERY, wait_s=0).version == first.version  # unchanged: no search

    gate.clear()
    library.add(3)
    waiting = cache.answer(QUERY, wait_s=0.05)
    assert not waiting.complete
    assert (waiting.pairs, waiting.version) == (first.pairs, first.version)
    gate.set()
    done = cache.answer(QUERY, wait_s=None)
    assert done.complete and done.version != first.version
    assert done.pairs == find_pairs(library.index, library.variants, QUERY)


def test_hybrid_pairs_are_scored_and_kept_current():
    """With min_score, visual pairs below min_cosine and beyond the pHash radius are kept where
    w * cosine + (1 - w) * (1 - pHash bits / 64) reaches it (the pHash at best over the turns),
    refused where it does not; the cache keeps them exactly current too."""
    library = Library(seed=5, edited=0.25)
    library.add(300)
    query = PairQuery(radius=6, min_cosine=0.95, k=8, min_score=0.85, w_visual=0.7)
    found = find_pairs(library.index, library.variants, query)
    hybrid = {pair: entry for pair, entry in found.items() if len(entry) > 3}
    assert hybrid, "edited copies kept by their hybrid score"
    mask = 2**64 - 1
    for (a, b), (distance, cosine, transform, score) in hybrid.items():
        codes = library.index.phashes.get(a), library.index.phashes.get(b)
        bits = min(
            [((codes[0] ^ codes[1]) & mask).bit_count()]
            + [((v ^ codes[1]) & mask).bit_count() for v in library.variants[a]]
            + [((v ^ codes[0]) & mask).bit_count() for v in library.variants[b]]
        )
        assert distance is None and transform is None and cosine < 0.95
        assert score == round(0.7 * cosine + 0.3 * (1 - bits / 64), 4) >= 0.85
    plain = find_pairs(library.index, library.variants, PairQuery(6, 0.95, 8))
    assert not set(hybrid) & set(plain)  # only the hybrid path finds them
    floor = find_pairs(library.index, library.variants, PairQuery(6, query.visual_floor, 8))
    assert set(floor) - set(found), "some alike enough to ask, refused by their score"

    cache = PairCache(library.index, library.variants_of)
    assert cache.pairs(query) == found
    for step in range(4):
        library.remove(7)
        library.add(6)
        assert cache.pairs(query) == find_pairs(library.index, library.variants, query), step
