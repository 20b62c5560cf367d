"""Duplicate candidate pairs checked against their pixels: a pHash or an embedding cannot tell
an edit from a second shot of the same scene (busque.media.same_picture can), so the pairs a
PairCache found keep only those whose pictures agree, or that cannot be judged (too little
texture to tell: the pair stands on its pHash or embedding, as before).

A verdict belongs to the pair's bytes: it is remembered (here, and in the catalog's
pair_checks when a store is given) and never computed again. Pairs are checked a connected
group at a time, so each photo is decoded about once.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence

from busque.media import same_picture
from busque.media.duplicate_groups import connected, sha_pair
from busque.media.pair_checks import PairChecks, ShaPair

logger = logging.getLogger("busque.index")

Pairs = dict[tuple[int, int], list]
Sources = Callable[[Sequence[int]], dict[int, tuple[str, str]]]  # id -> (sha256, image key)
SAVE_EVERY = 500


class PairChecker:
    def __init__(
        self,
        sources: Sources,
        read: Callable[[str], bytes],
        min_agreement: float,
        store: PairChecks | None = None,
        keep_pictures: int = 64,
    ):
        self.sources = sources
        self.read = read
        self.min_agreement = min_agreement
        self.store = store
        self.known: dict[ShaPair, float | None] = {}
        self.keep_pictures = keep_pictures
        self._pictures: OrderedDict[int, same_picture.Picture | None] = OrderedDict()

    def __call__(self, pairs: Pairs) -> Pairs:
        """The pairs whose pictures agree, or that cannot be judged."""
        source = self.sources(sorted({i for pair in pairs for i in pair}))
        shas = {
            (a, b): sha_pair(source[a][0], source[b][0])
            for a, b in pairs
            if a in source and b in source and source[a][0] != source[b][0]
        }
        unknown = {sp for sp in shas.values() if sp not in self.known}
        if unknown and self.store is not None:
            self.known |= self.store.get(unknown, same_picture.METHOD)
        todo = [pair for pair in _grouped(pairs) if pair in shas and shas[pair] not in self.known]
        if todo:
            logger.info("checking %d duplicate candidate pairs against their pixels", len(todo))
        fresh: dict[ShaPair, float | None] = {}
        for done, (a, b) in enumerate(todo, 1):
            if shas[a, b] in self.known:
                continue  # another pair of the same bytes
            verdict = self._check(a, b, source)
            if verdict is not False:
                self.known[shas[a, b]] = fresh[shas[a, b]] = verdict
            if len(fresh) >= SAVE_EVERY:
                self._save(fresh)
                fresh = {}
                logger.info("checked %d of %d pairs", done, len(todo))
        self._save(fresh)  # the rest (a last pair of known bytes skipped the check above)
        self._pictures.clear()
        return {pair: entry for pair, entry in pairs.items() if self._stands(shas.get(pair))}

    def _stands(self, pair: ShaPair | None) -> bool:
        agreement = self.known.get(pair) if pair is not None else None
        return agreement is None or agreement >= self.min_agreement

    def _check(self, a: int, b: int, source) -> float | None | bool:
        """The agreement of two items' pictures; False: a picture could not be read now (the
        verdict is not stored, the next check tries again)."""
        if source[a][0] > source[b][0]:
            a, b = b, a  # the smaller sha256 first: one verdict per pair of bytes, any catalog
        first, second = self._picture(a, source[a][1]), self._picture(b, source[b][1])
        if first is None or second is None:
            return False
        return same_picture.agreement(first, second)

    def _picture(self, item: int, key: str) -> same_picture.Picture | None:
        if item in self._pictures:
            self._pictures.move_to_end(item)
            return self._pictures[item]
        try:
            found = same_picture.picture(self.read(key))
        except Exception as exc:  # a missing object, a broken image: the pair stands
            logger.warning("duplicate check: cannot read %s: %s", key, exc)
            found = None
        self._pictures[item] = found
        while len(self._pictures) > self.keep_pictures:
            self._pictures.popitem(last=False)
        return found

    def _save(self, verdicts: dict[ShaPair, float | None]) -> None:
        if self.store is not None and verdicts:
            self.store.put(verdicts, same_picture.METHOD)


def _grouped(pairs: Pairs) -> list[tuple[int, int]]:
    """The pairs ordered a connected group at a time (a photo's pairs close together)."""
    group_of = {i: n for n, group in enumerate(connected(pairs)) for i in group}
    return sorted(pairs, key=lambda pair: (group_of[pair[0]], pair))
