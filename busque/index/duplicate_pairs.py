"""Duplicate pairs from the indices, never all pairs: a pHash radius search per item (and per
turn or mirror of it), a k-NN search per embedding; and `PairCache`, which keeps one answer
current as items come and go, so a review page does not search the whole collection again.

A pair is (a, b) with a < b -> [pHash distance or None, cosine or None, transform or None]:
the nearest pHash distance found (between the two codes, or between one item's turned or
mirrored code and the other's code, then `transform` names the turn) and the best cosine. A
query with a hybrid `min_score` also keeps visual pairs below its min_cosine whose hybrid score
reaches it: [None, cosine, None, score].

Visual pairs are those at least `min_cosine` alike among an item's `k` nearest, so an item that
comes or goes can change other items' k nearest: the cache remembers whose search found each
visual neighbour and searches again exactly the items whose k nearest changed (on an exact
vector index, its answer is the one searching everything again would give).
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from busque.index.hybrid import HybridIndex
from busque.index.phash_index import as_code, popcount
from busque.media.phash import TRANSFORMS

Pairs = dict[tuple[int, int], list]
TURNS = list(TRANSFORMS)  # the names, in the order a row's codes come in

# Past this share of the collection added since the last answer, searching everything again
# costs about what searching the new items would (and is exact for k-NN displacements).
REBUILD_SHARE = 0.1
# Answers kept per index: a client trying thresholds one after another must not fill memory.
KEEP_ANSWERS = 4


@dataclass(frozen=True)
class PairQuery:
    radius: int
    min_cosine: float | None
    k: int = 16
    # Hybrid pairs: w_visual * cosine + (1 - w_visual) * (1 - pHash bits / 64) at least
    # min_score, the pHash at best over the turns (None: no hybrid path).
    min_score: float | None = None
    w_visual: float = 0.7

    @property
    def visual_floor(self) -> float | None:
        """The cosine the k-NN searches keep: min_cosine, or lower where a hybrid score can
        still reach min_score (its pHash part is at most 1 - w_visual)."""
        if self.min_score is None or self.w_visual <= 0:
            return self.min_cosine
        reachable = (self.min_score - (1 - self.w_visual)) / self.w_visual
        return reachable if self.min_cosine is None else min(self.min_cosine, reachable)


# Which of two finds of one pair at one distance is kept: the codes as they are, then the
# turns in TRANSFORMS' order, so the answer never depends on the order of the searches.
RANK = {None: 0, **{turn: n + 1 for n, turn in enumerate(TURNS)}}
TURN_OF_RANK = [None, *TURNS]


def _keep_nearest(found: Pairs, i: int, j: int, distance: int, transform: str | None) -> None:
    # The entry is replaced, not changed: an answer a reader holds may share it.
    pair = (min(i, j), max(i, j))
    entry = found.get(pair)
    if entry is None:
        found[pair] = [int(distance), None, transform]
    elif entry[0] is None or (distance, RANK[transform]) < (entry[0], RANK[entry[2]]):
        found[pair] = [int(distance), entry[1], transform]


def phash_pairs(
    index: HybridIndex,
    variants: dict[int, list[int]],
    radius: int,
    queried: Iterable[int] | None = None,
    found: Pairs | None = None,
) -> Pairs:
    """pHash pairs of the `queried` items (default: all): their codes and their turns' and
    mirrors' codes, radius searches of the index (batched: busque.index.phash_index)."""
    found = {} if found is None else found
    phashes = index.phashes
    with index.locked():
        if queried is None:
            ids, codes = phashes.items()
        else:
            known = [(i, phashes.get(i)) for i in queried]
            known = [(i, code) for i, code in known if code is not None]
            ids = np.array([i for i, _ in known], np.int64)
            codes = np.array([code for _, code in known], np.uint64)
    turned = [i for i in ids.tolist() if i in variants]
    turn_codes = np.array([variants[i] for i in turned], np.int64).reshape(-1, len(TURNS))
    asked_ids = np.concatenate([ids, np.repeat(np.array(turned, np.int64), len(TURNS))])
    asked_rank = np.concatenate(
        [np.zeros(len(ids), np.int64), np.tile(np.arange(1, len(TURNS) + 1), len(turned))]
    )
    asked = np.concatenate([codes.astype(np.uint64), turn_codes.view(np.uint64).ravel()])
    query, hit, distance = _radius_searches(index, asked, radius)
    item = asked_ids[query]
    other = hit != item
    item, hit, rank = item[other], hit[other], asked_rank[query][other]
    key = distance[other].astype(np.int64) * len(TURN_OF_RANK) + rank
    low, high = np.minimum(item, hit), np.maximum(item, hit)
    order = np.lexsort((key, high, low))
    low, high, key = low[order], high[order], key[order]
    first = np.ones(len(low), bool)
    first[1:] = (low[1:] != low[:-1]) | (high[1:] != high[:-1])
    for a, b, best in zip(
        low[first].tolist(), high[first].tolist(), key[first].tolist(), strict=True
    ):
        distance_of, rank_of = divmod(best, len(TURN_OF_RANK))
        _keep_nearest(found, a, b, distance_of, TURN_OF_RANK[rank_of])
    return found


def _radius_searches(index: HybridIndex, codes: np.ndarray, radius: int, chunk: int = 8192):
    """search_radius_many of the codes, a chunk at a time under the index's lock (writes and
    searches in between go on)."""
    parts = []
    for start in range(0, len(codes), chunk):
        with index.locked():
            query, hit, distance = index.phashes.search_radius_many(
                codes[start : start + chunk], radius
            )
        parts.append((query + start, hit, distance))
    if not parts:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.uint8)
    query, hit, distance = (np.concatenate(p) for p in zip(*parts, strict=True))
    return query, hit, distance


def visual_neighbours(
    index: HybridIndex,
    min_cosine: float,
    k: int,
    queried: Iterable[int] | None = None,
    batch: int = 1024,
) -> dict[int, dict[int, float]]:
    """For each queried item (default: all), those of its `k` nearest at least `min_cosine`
    alike."""
    if queried is None:
        with index.locked():
            ids, matrix = index.vectors.items()
    else:
        ids, matrix = _vectors_of(index, queried)
    found: dict[int, dict[int, float]] = {}
    for start in range(0, len(ids), batch):
        with index.locked():
            scores, neighbours = index.vectors.search(matrix[start : start + batch], k)
        for i, row_scores, row_ids in zip(
            ids[start : start + batch].tolist(), scores, neighbours, strict=True
        ):
            alike = {
                j: round(score, 4)
                for score, j in zip(row_scores.tolist(), row_ids.tolist(), strict=True)
                if j >= 0 and j != i and score >= min_cosine
            }
            if alike:  # most items have none: not kept, not walked again
                found[i] = alike
    return found


def _vectors_of(index: HybridIndex, ids: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
    with index.locked():
        wanted = [(i, index.vectors.reconstruct(i)) for i in ids]
    wanted = [(i, v) for i, v in wanted if v is not None]
    if not wanted:
        return np.empty(0, np.int64), np.empty((0, index.vectors.dim), np.float32)
    return np.array([i for i, _ in wanted], np.int64), np.stack([v for _, v in wanted])


def alike_to(index: HybridIndex, item: int, min_cosine: float, k: int) -> list[int]:
    """Every item at least `min_cosine` alike to `item` (k-NN searches of growing k until the
    last is below it): those whose k nearest it may have entered."""
    ids, matrix = _vectors_of(index, [item])
    if not len(ids):
        return []
    want = 4 * k
    while True:
        with index.locked():
            scores, neighbours = index.vectors.search(matrix, min(want, len(index)))
        if want >= len(index) or scores[0][-1] < min_cosine:
            hits = zip(scores[0].tolist(), neighbours[0].tolist(), strict=True)
            return [j for score, j in hits if j >= 0 and j != item and score >= min_cosine]
        want *= 4


def merged(phash: Pairs, visual: dict[int, dict[int, float]]) -> Pairs:
    """The pHash pairs with the visual neighbours joined in (a pair's best cosine). Entries
    are replaced, never changed: `phash`'s own stay as they are."""
    found = dict(phash)
    for i, neighbours in visual.items():
        for j, cosine in neighbours.items():  # (rounded already: visual_neighbours)
            pair = (i, j) if i < j else (j, i)
            entry = found.get(pair)
            if entry is None:
                found[pair] = [None, cosine, None]
            elif entry[1] is None or cosine > entry[1]:
                found[pair] = [entry[0], cosine, entry[2]]
    return found


def hybrid_candidates(found: Pairs, query: PairQuery) -> list[tuple[int, int]]:
    """The pairs only the hybrid path can keep: visual, below min_cosine, no pHash match."""
    if query.min_score is None:
        return []
    return [
        pair
        for pair, (distance, cosine, *_) in found.items()
        if distance is None
        and cosine is not None
        and (query.min_cosine is None or cosine < query.min_cosine)
    ]


def best_distance(a: int, b: int, codes: dict, variants: dict) -> int | None:
    """The pHash bits between a and b, at best over each one's turns against the other."""
    if codes.get(a) is None or codes.get(b) is None:
        return None
    mask = (1 << 64) - 1
    best = ((codes[a] ^ codes[b]) & mask).bit_count()
    for turned, other in ((a, codes[b]), (b, codes[a])):
        for code in variants.get(turned, ()):
            best = min(best, ((code ^ other) & mask).bit_count())
    return best


def with_hybrid(found: Pairs, query: PairQuery, scores: dict[tuple[int, int], float]) -> Pairs:
    """`found` with the hybrid candidates kept only where their score (in `scores`) reaches
    min_score, their entry [None, cosine, None, score]."""
    if query.min_score is None:
        return found
    out = dict(found)
    for pair in hybrid_candidates(found, query):
        score = scores.get(pair)
        if score is None or score < query.min_score:
            del out[pair]
        else:
            out[pair] = [None, found[pair][1], None, score]
    return out


def hybrid_scores(
    index: HybridIndex, found: Pairs, pairs: list, variants: dict, w_visual: float
) -> dict[tuple[int, int], float | None]:
    """The hybrid score of each of these pairs of `found`, their codes read from the index."""
    if not pairs:
        return {}
    with index.locked():
        codes = {i: index.phashes.get(i) for i in {i for pair in pairs for i in pair}}
    return {
        (a, b): hybrid_score(found[a, b][1], best_distance(a, b, codes, variants), w_visual)
        for a, b in pairs
    }


def hybrid_score(cosine: float, distance: int | None, w_visual: float) -> float | None:
    if distance is None:
        return None
    return round(w_visual * cosine + (1 - w_visual) * (1 - distance / 64), 4)


def find_pairs(index: HybridIndex, variants: dict[int, list[int]], query: PairQuery) -> Pairs:
    """Every pair of the index, from its own searches."""
    visual = {}
    if query.visual_floor is not None:
        visual = visual_neighbours(index, query.visual_floor, query.k)
    found = merged(phash_pairs(index, variants, query.radius), visual)
    todo = hybrid_candidates(found, query)
    return with_hybrid(found, query, hybrid_scores(index, found, todo, variants, query.w_visual))


@dataclass
class _Answer:
    phash: Pairs
    visual: dict[int, dict[int, float]]  # whose search found which neighbour
    covered: set[int]  # the index's ids when the pairs were last brought up to date
    changes: int  # the index's change counter then
    pairs: Pairs = field(default_factory=dict)
    variant_ids: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    variant_codes: np.ndarray = field(default_factory=lambda: np.empty((0, len(TURNS)), np.uint64))
    serial: int = 0  # which computation this is (the answer's version)
    scores: dict[tuple[int, int], float | None] = field(default_factory=dict)  # hybrid
    previous: Pairs | None = None  # the answer's before this one, and its serial: a caller
    previous_serial: int = 0  # that has those gets what changed (LiveIndex)


_serials = itertools.count(1)


@dataclass(frozen=True)
class PairsAnswer:
    pairs: Pairs
    version: str  # the same version, the same pairs
    complete: bool  # False: the search was still running; these are the last pairs found
    previous_version: str | None = None  # the answer before this one (None: none kept)
    previous_pairs: Pairs | None = None


class PairCache:
    """The pairs of one index for each PairQuery asked, brought up to date on the next ask:
    pairs of removed items dropped, added items searched (their codes, turns and embeddings
    against the index, their codes against the turns of the items already there), and the
    items whose k nearest changed searched again. The work runs in a thread of its own, so an
    ask can stop waiting (a large collection's first search takes minutes) and come back."""

    def __init__(
        self,
        index: HybridIndex,
        variants_of: Callable[[list[int] | None], dict],
        check: Callable[[Pairs], Pairs] | None = None,
    ):
        self.index = index
        self.variants_of = variants_of  # index ids (None: all) -> their turns' codes
        self.check = check  # the pairs found -> those that stand (busque.index.checked_pairs)
        self.answers: dict[PairQuery, _Answer] = {}  # the least recently used first
        self.uid = uuid.uuid4().hex[:12]  # another cache (replica, snapshot): other versions
        self._search_lock = threading.Lock()  # the searches, one at a time
        self._lock = threading.Lock()  # answers and workers
        self._workers: dict[PairQuery, threading.Thread] = {}

    def pairs(self, query: PairQuery) -> Pairs:
        """The pairs, once they are up to date."""
        return self.answer(query, wait_s=None).pairs

    def answer(self, query: PairQuery, wait_s: float | None) -> PairsAnswer:
        """The pairs, up to date if that takes at most `wait_s` seconds (None: however long);
        else the last ones found (none the first time), marked incomplete."""
        with self._lock:
            answer = self.answers.get(query)
            worker = self._workers.get(query)
            if worker is None or not worker.is_alive():
                if answer is not None and answer.changes == self.index.changes:
                    return self._as_found(query, answer, complete=True)
                worker = threading.Thread(target=self._bring_up_to_date, args=(query,), daemon=True)
                self._workers[query] = worker
                worker.start()
        worker.join(wait_s)
        complete = not worker.is_alive()
        with self._lock:
            answer = self.answers.get(query)
            if answer is None:
                return PairsAnswer({}, f"{self.uid}-none", complete=False)
            return self._as_found(query, answer, complete)

    def _as_found(self, query: PairQuery, answer: _Answer, complete: bool) -> PairsAnswer:
        self.answers[query] = self.answers.pop(query)  # now the most recently used
        previous = None
        if answer.previous is not None:
            previous = f"{self.uid}-{answer.previous_serial}"
        return PairsAnswer(
            answer.pairs, f"{self.uid}-{answer.serial}", complete, previous, answer.previous
        )

    def _bring_up_to_date(self, query: PairQuery) -> None:
        with self._search_lock:
            with self._lock:
                answer = self.answers.get(query)
            with self.index.locked():
                current = set(self.index.ids())
                changes = self.index.changes
            if answer is not None and answer.changes == changes:
                return
            if answer is None or len(current - answer.covered) > REBUILD_SHARE * len(current):
                fresh = self._rebuild(query, current, changes)
            else:  # a copy, brought up to date: readers keep the answer they have whole
                fresh = dataclasses.replace(
                    answer,
                    phash=dict(answer.phash),
                    visual=dict(answer.visual),
                    scores=dict(answer.scores),
                )
                self._update(query, fresh, current, changes)
            fresh.pairs = merged(fresh.phash, fresh.visual)
            if query.min_score is not None:
                self._score(query, fresh)
                fresh.pairs = with_hybrid(fresh.pairs, query, fresh.scores)
            if self.check is not None:
                fresh.pairs = self.check(fresh.pairs)
            fresh.serial = next(_serials)
            if answer is not None:
                fresh.previous, fresh.previous_serial = answer.pairs, answer.serial
            with self._lock:
                self.answers.pop(query, None)
                self.answers[query] = fresh
                while len(self.answers) > KEEP_ANSWERS:
                    oldest = next(iter(self.answers))
                    del self.answers[oldest]
                    if not self._workers[oldest].is_alive():  # done: forget its thread too
                        del self._workers[oldest]

    def _score(self, query: PairQuery, answer: _Answer) -> None:
        """The hybrid scores of the candidates not scored yet (a pair's never changes)."""
        todo = [p for p in hybrid_candidates(answer.pairs, query) if p not in answer.scores]
        if not todo:
            return
        variants = self.variants_of(sorted({i for pair in todo for i in pair}))
        answer.scores |= hybrid_scores(self.index, answer.pairs, todo, variants, query.w_visual)

    def _rebuild(self, query: PairQuery, current: set[int], changes: int) -> _Answer:
        variants = self.variants_of(None)
        visual = {}
        if query.visual_floor is not None:
            visual = visual_neighbours(self.index, query.visual_floor, query.k)
        answer = _Answer(phash_pairs(self.index, variants, query.radius), visual, current, changes)
        self._keep_variants(answer, variants)
        return answer

    def _update(self, query: PairQuery, answer: _Answer, current: set[int], changes: int):
        gone = answer.covered - current
        added = sorted(current - answer.covered)
        if gone:
            answer.phash = {
                pair: entry
                for pair, entry in answer.phash.items()
                if pair[0] not in gone and pair[1] not in gone
            }
            keep = ~np.isin(answer.variant_ids, np.fromiter(gone, np.int64))
            answer.variant_ids = answer.variant_ids[keep]
            answer.variant_codes = answer.variant_codes[keep]
        if added:
            variants = self.variants_of(added)
            phash_pairs(self.index, variants, query.radius, queried=added, found=answer.phash)
            self._against_old_turns(answer, added, query.radius)
            self._keep_variants(answer, variants)
        if query.visual_floor is not None:
            self._update_visual(query, answer, gone, added, current)
        answer.covered = current
        answer.changes = changes

    def _update_visual(self, query, answer: _Answer, gone, added, current) -> None:
        # Whose k nearest changed: those that had a gone item among them (alike enough to
        # count), and those a new item is alike enough to have entered.
        again = set(added)
        for i, neighbours in answer.visual.items():
            if not gone.isdisjoint(neighbours):
                again.add(i)
        for n in added:
            again.update(alike_to(self.index, n, query.visual_floor, query.k))
        again &= current
        for i in gone | again:  # searched again below; kept only if some are alike still
            answer.visual.pop(i, None)
        answer.visual.update(
            visual_neighbours(self.index, query.visual_floor, query.k, queried=sorted(again))
        )

    def _against_old_turns(self, answer: _Answer, added: list[int], radius: int) -> None:
        """An old item's turned code near a new item's code: the new code against them all."""
        if not len(answer.variant_ids):
            return
        for i in added:
            with self.index.locked():
                code = self.index.phashes.get(i)
            if code is None:
                continue
            distances = popcount(answer.variant_codes ^ as_code(code))
            rows, turns = np.nonzero(distances <= radius)
            for row, turn in zip(rows.tolist(), turns.tolist(), strict=True):
                j = int(answer.variant_ids[row])
                if j != i:
                    distance = int(distances[row, turn])
                    _keep_nearest(answer.phash, j, i, distance, TURNS[turn])

    @staticmethod
    def _keep_variants(answer: _Answer, variants: dict[int, list[int]]) -> None:
        if not variants:
            return
        ids = np.fromiter(variants.keys(), np.int64, len(variants))
        codes = np.array(list(variants.values()), dtype=np.int64).view(np.uint64)
        codes = codes.reshape(-1, len(TRANSFORMS))
        answer.variant_ids = np.concatenate([answer.variant_ids, ids])
        answer.variant_codes = np.concatenate([answer.variant_codes, codes])
