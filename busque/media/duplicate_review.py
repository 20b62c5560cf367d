"""A collection's duplicate review: the groups of GET /v1/duplicates, computed from the pairs a
Matcher found (busque.index.duplicate_pairs) and the catalog's rows, and kept while neither
changes. At 100,000 items computing them reads some 30,000 rows (seconds); a review page asked
again, or the next page, costs two version checks instead; after a resolve, a decision or new
pairs, only the groups that hold a changed item are built again.

The catalog's version is one query: the collection's newest change-log entry (items added,
trashed, restored), its newest row update (a resolve merges metadata into the kept item), the
tenant's "not duplicates" decisions and library paths.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select

from busque.db.schema import duplicate_decisions, library_files, media, media_changes
from busque.media.catalog import Catalog, index_id
from busque.media.duplicate_groups import (
    Pair,
    connected,
    decided_against,
    decided_apart,
    duplicate_groups,
)
from busque.media.resolve import Resolutions, suggest

# Reviews kept per process: one per (tenant, collection, thresholds) a reviewer is looking at.
KEEP_REVIEWS = 16
# Past this many changed items, building everything again costs about as much.
MAX_CHANGED = 2000


@dataclass(frozen=True)
class Review:
    pairs_version: str
    catalog_version: tuple
    pairs: frozenset  # the Matcher's rows: (a, b, pHash distance, cosine, transform, score)
    exact: list[list[str]]
    exact_files: list[dict]
    near: list[list[str]]
    near_suggested: list[str]
    groups: list[dict]
    by_index: dict[int, dict]  # index id -> catalog row, of every paired item still indexed
    decided: frozenset  # sha256 pairs decided "not duplicates" (at least those among the rows)
    links: dict[int, list[tuple]]  # index id -> the pairs (rows) it is in
    group_of: dict[str, dict]  # media id -> its group (one of `groups`)

    def row(self, media_id: str) -> dict:
        return self.by_index[index_id(media_id)]


class DuplicateReviews:
    def __init__(self, catalog: Catalog, resolutions: Resolutions):
        self.catalog = catalog
        self.resolutions = resolutions
        self._kept: dict[tuple, Review] = {}
        self._lock = threading.Lock()

    def known(self, key: tuple) -> Review | None:
        """The review last computed for key (tenant, collection, thresholds)."""
        with self._lock:
            return self._kept.get(key)

    def review(self, key: tuple, known: Review | None, found: dict) -> Review:
        """The review for the Matcher's answer `found` ({"version", "pairs": None when it is
        `known`'s, or "changes": {"added", "removed"} since `known`'s}): `known` itself while
        neither the pairs nor the catalog changed."""
        tenant, collection = key[:2]
        version = self.catalog_version(tenant, collection)
        if known is not None and (known.pairs_version, known.catalog_version) == (
            found["version"],
            version,
        ):
            return known
        if found.get("changes") is not None:
            changes = found["changes"]
            pairs = (known.pairs - set(changes["removed"])) | set(changes["added"])
        elif found["pairs"] is not None:
            pairs = frozenset(found["pairs"])
        else:
            pairs = known.pairs
        fresh = None
        if known is not None:
            fresh = self._refresh(tenant, collection, known, found["version"], version, pairs)
        if fresh is None:
            fresh = self._compute(tenant, collection, found["version"], version, pairs)
        with self._lock:
            self._kept.pop(key, None)
            self._kept[key] = fresh
            while len(self._kept) > KEEP_REVIEWS:
                del self._kept[next(iter(self._kept))]
        return fresh

    def catalog_version(self, tenant: str, collection: str) -> tuple:
        in_scope = (media.c.tenant_id == tenant, media.c.collection == collection)
        decisions = duplicate_decisions.c.tenant_id == tenant
        files = library_files.c.tenant_id == tenant
        query = select(
            select(func.max(media_changes.c.id))
            .where(media_changes.c.tenant_id == tenant, media_changes.c.collection == collection)
            .scalar_subquery(),
            select(func.max(media.c.updated_at)).where(*in_scope).scalar_subquery(),
            select(func.count()).where(decisions).scalar_subquery(),
            select(func.max(duplicate_decisions.c.created_at)).where(decisions).scalar_subquery(),
            select(func.count()).where(files).scalar_subquery(),
            select(func.max(library_files.c.id)).where(files).scalar_subquery(),
        )
        with self.catalog.reader.connect() as conn:
            return tuple(conn.execute(query).one())

    def _compute(self, tenant, collection, pairs_version, catalog_version, found) -> Review:
        """Everything, from the pairs and the catalog."""
        found = frozenset(found)
        # Indexed items only: one trashed since the Matcher last synced is left out.
        by_index = self.catalog.by_index_ids(tenant, sorted({i for p in found for i in p[:2]}))
        decided = self.resolutions.decided(tenant, {row["sha256"] for row in by_index.values()})
        grouped = _grouped(sorted(found), by_index, decided)
        exact_files = self.catalog.exact_groups(tenant, collection)
        versions = (pairs_version, catalog_version, found)
        links = _linked({}, found, ())
        return self._review(versions, by_index, decided, grouped, exact_files, links)

    def _refresh(self, tenant, collection, known: Review, pairs_version, catalog_version, found):
        """`known` brought up to date with what changed since (a resolve, a decision, pairs
        added or gone): the groups that hold a changed item are built again, the others kept.
        None when library paths changed, a decision was taken back, or too much changed."""
        if catalog_version[4:] != known.catalog_version[4:]:
            return None
        gone_pairs, new_pairs = known.pairs - found, found - known.pairs
        changed = {i for pair in (*gone_pairs, *new_pairs) for i in pair[:2]}
        last_change, last_update, decisions, last_decision = known.catalog_version[:4]
        new_decisions = self._decisions_after(tenant, last_decision)
        if catalog_version[2] != decisions + len(new_decisions):
            return None
        changed |= self._items_changed(tenant, collection, last_change, last_update)
        decided = known.decided | new_decisions
        shas = {sha for pair in new_decisions for sha in pair}
        changed |= {i for i, row in known.by_index.items() if row["sha256"] in shas}
        if len(changed) > MAX_CHANGED:
            return None
        links = _linked(known.links, new_pairs, gone_pairs)
        by_index = dict(known.by_index)
        for i in changed:
            by_index.pop(i, None)
        by_index |= self.catalog.by_index_ids(tenant, sorted(i for i in changed if i in links))
        # A changed item's old group comes apart too; then all that the pairs connect to them.
        old_rows = _ids(changed, known.by_index, by_index)
        hit = {id(known.group_of[m]): known.group_of[m] for m in old_rows if m in known.group_of}
        seeds = changed | {index_id(m) for g in hit.values() for m in g["media_ids"]}
        reached = _reached(seeds, links, by_index, decided)
        gone = _ids(reached, known.by_index, by_index)
        # A group a changed item now links to (a restored copy, a new pair) is reached whole.
        hit |= {id(known.group_of[m]): known.group_of[m] for m in gone if m in known.group_of}
        local = sorted({row for i in reached for row in links.get(i, ())})
        rebuilt = _grouped(local, {i: by_index[i] for i in reached if i in by_index}, decided)
        near = [
            (group, keep)
            for group, keep in zip(known.near, known.near_suggested, strict=True)
            if gone.isdisjoint(group)
        ]
        for added in zip(rebuilt["near"], rebuilt["near_suggested"], strict=True):
            bisect.insort(near, added)
        groups = [g for g in known.groups if id(g) not in hit]
        for added in rebuilt["groups"]:
            bisect.insort(groups, added, key=_group_order)
        grouped = {
            "near": [group for group, _ in near],
            "near_suggested": [keep for _, keep in near],
            "groups": groups,
        }
        exact_files = self._exact_refreshed(tenant, collection, known.exact_files, changed)
        versions = (pairs_version, catalog_version, found)
        group_of = {m: g for m, g in known.group_of.items() if id(g) not in hit}
        return self._review(versions, by_index, decided, grouped, exact_files, links, group_of)

    def _exact_refreshed(self, tenant, collection, known: list[dict], changed: set[int]):
        """The exact groups with those of the changed items' bytes read again."""
        touched = self.catalog.sha256_of(tenant, sorted(changed))
        if not touched:
            return known
        kept = [g for g in known if g["sha256"] not in touched]
        for group in self.catalog.exact_groups(tenant, collection, shas=touched):
            bisect.insort(kept, group, key=_exact_order)
        return kept

    def _review(self, versions, by_index, decided, grouped, exact_files, links, group_of=None):
        """A Review of these groups; `group_of` the kept groups' members (the new ones added)."""
        pairs_version, catalog_version, found = versions
        group_of = {} if group_of is None else group_of
        for group in grouped["groups"]:
            if group["media_ids"][0] not in group_of:
                group_of |= dict.fromkeys(group["media_ids"], group)
        return Review(
            pairs_version=pairs_version,
            catalog_version=catalog_version,
            pairs=found,
            exact=[
                g["media_ids"] for g in sorted(exact_files, key=_sha) if len(g["media_ids"]) > 1
            ],
            exact_files=exact_files,
            by_index=by_index,
            decided=frozenset(decided),
            links=links,
            group_of=group_of,
            **grouped,
        )

    def _items_changed(self, tenant, collection, last_change, last_update) -> set[int]:
        """Index ids of the collection's items added, removed or updated since."""
        with self.catalog.reader.connect() as conn:
            logged = conn.scalars(
                select(media_changes.c.media_id).where(
                    media_changes.c.tenant_id == tenant,
                    media_changes.c.collection == collection,
                    media_changes.c.id > (last_change or 0),
                )
            )
            updated = conn.scalars(
                select(media.c.id).where(
                    media.c.tenant_id == tenant,
                    media.c.collection == collection,
                    media.c.updated_at > (last_update or 0),
                )
            )
            return {index_id(m) for m in (*logged, *updated)}

    def _decisions_after(self, tenant, last_decision) -> frozenset:
        with self.catalog.reader.connect() as conn:
            rows = conn.execute(
                select(duplicate_decisions.c.sha256_a, duplicate_decisions.c.sha256_b).where(
                    duplicate_decisions.c.tenant_id == tenant,
                    duplicate_decisions.c.created_at > (last_decision or 0),
                )
            )
            return frozenset((a, b) for a, b in rows)


def _grouped(found: Iterable, by_index: dict[int, dict], decided) -> dict:
    """The groups, and the near (pHash) groups with their suggestions, of these pairs."""
    pairs = [
        Pair(by_index[a], by_index[b], *found_as)  # (distance, cosine, transform[, score])
        for a, b, *found_as in found
        if a in by_index and b in by_index
    ]
    pairs = [p for p in pairs if not decided_against(p, decided)]
    by_id = {row["id"]: row for row in by_index.values()}
    near = connected((p.a["id"], p.b["id"]) for p in pairs if p.phash_distance is not None)
    return {
        "near": near,
        # The item POST /v1/duplicates/resolve keeps of each near group unless told otherwise.
        "near_suggested": [suggest([by_id[i] for i in group]) for group in near],
        "groups": duplicate_groups(pairs, suggest),
    }


def _linked(known: dict[int, list], added: Iterable, gone: Iterable) -> dict[int, list]:
    """Each item's pairs, `known` with pairs added and gone (its lists are left as they are)."""
    links = dict(known)
    for pair in gone:
        for end in pair[:2]:
            left = [p for p in links[end] if p != pair]
            if left:
                links[end] = left
            else:
                del links[end]
    for pair in added:
        for end in pair[:2]:
            links[end] = [*links.get(end, ()), pair]
    return links


def _reached(seeds: set[int], links: dict, by_index: dict[int, dict], decided) -> set[int]:
    """The seeds and every item the (valid) pairs connect to them."""
    reached, todo = set(seeds), list(seeds)
    while todo:
        for a, b, *_ in links.get(todo.pop(), ()):
            rows = by_index.get(a), by_index.get(b)
            if None in rows or decided_apart(rows[0]["sha256"], rows[1]["sha256"], decided):
                continue
            for other in (a, b):
                if other not in reached:
                    reached.add(other)
                    todo.append(other)
    return reached


def _ids(index_ids: Iterable[int], *rows: dict[int, dict]) -> set[str]:
    """The media ids of these index ids, from whichever rows know them."""
    return {table[i]["id"] for i in index_ids for table in rows if i in table}


def _group_order(group: dict) -> tuple:
    return (-group["savings_bytes"], group["suggested"])


def _exact_order(group: dict) -> tuple:
    return (-group["savings_bytes"], group["sha256"])


def _sha(group: dict) -> str:
    return group["sha256"]
