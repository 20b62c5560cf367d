"""A collection's duplicate review: the groups of GET /v1/duplicates, computed from the pairs a
Matcher found (busque.index.duplicate_pairs) and the catalog's rows, and kept while neither
changes. At 100,000 items computing them reads some 30,000 rows (a second or more); a review
page asked again, or the next page, costs two version checks instead.

The catalog's version is one query: the collection's newest change-log entry (items added,
trashed, restored), its newest row update (a resolve merges metadata into the kept item), the
tenant's "not duplicates" decisions and library paths.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy import func, select

from busque.db.schema import duplicate_decisions, library_files, media, media_changes
from busque.media.catalog import Catalog
from busque.media.duplicate_groups import Pair, connected, decided_against, duplicate_groups
from busque.media.resolve import Resolutions, suggest

# Reviews kept per process: one per (tenant, collection, thresholds) a reviewer is looking at.
KEEP_REVIEWS = 16


@dataclass(frozen=True)
class Review:
    pairs_version: str
    catalog_version: tuple
    pairs: list  # the Matcher's rows: (a, b, pHash distance, cosine, transform)
    exact: list[list[str]]
    exact_files: list[dict]
    near: list[list[str]]
    near_suggested: list[str]
    groups: list[dict]
    rows: dict[str, dict]  # media id -> catalog row, of every grouped item


class DuplicateReviews:
    def __init__(self, catalog: Catalog, resolutions: Resolutions):
        self.catalog = catalog
        self.resolutions = resolutions
        self._kept: dict[tuple, Review] = {}
        self._lock = threading.Lock()

    def known(self, key: tuple) -> Review | None:
        """The review last computed for key (tenant, collection, radius, min_cosine)."""
        with self._lock:
            return self._kept.get(key)

    def review(self, key: tuple, known: Review | None, found: dict) -> Review:
        """The review for the Matcher's answer `found` ({"version", "pairs": None when it is
        `known`'s}): `known` itself while neither the pairs nor the catalog changed."""
        tenant, collection = key[:2]
        catalog_version = self.catalog_version(tenant, collection)
        if (
            known is not None
            and known.pairs_version == found["version"]
            and known.catalog_version == catalog_version
        ):
            return known
        pairs = found["pairs"] if found["pairs"] is not None else known.pairs
        fresh = self._compute(tenant, collection, found["version"], catalog_version, pairs)
        with self._lock:
            self._kept.pop(key, None)
            self._kept[key] = fresh
            while len(self._kept) > KEEP_REVIEWS:
                del self._kept[next(iter(self._kept))]
        return fresh

    def catalog_version(self, tenant: str, collection: str) -> tuple:
        in_scope = (media.c.tenant_id == tenant, media.c.collection == collection)
        query = select(
            select(func.max(media_changes.c.id))
            .where(media_changes.c.tenant_id == tenant, media_changes.c.collection == collection)
            .scalar_subquery(),
            select(func.max(media.c.updated_at)).where(*in_scope).scalar_subquery(),
            select(func.count()).where(duplicate_decisions.c.tenant_id == tenant).scalar_subquery(),
            select(func.max(duplicate_decisions.c.created_at))
            .where(duplicate_decisions.c.tenant_id == tenant)
            .scalar_subquery(),
            select(func.count()).where(library_files.c.tenant_id == tenant).scalar_subquery(),
            select(func.max(library_files.c.id))
            .where(library_files.c.tenant_id == tenant)
            .scalar_subquery(),
        )
        with self.catalog.reader.connect() as conn:
            return tuple(conn.execute(query).one())

    def _compute(self, tenant, collection, pairs_version, catalog_version, found) -> Review:
        catalog = self.catalog
        exact = catalog.exact_duplicates(tenant, collection)
        exact_files = catalog.exact_groups(tenant, collection)
        # Indexed items only: one trashed since the Matcher last synced is left out.
        rows = catalog.by_index_ids(tenant, list({i for a, b, *_ in found for i in (a, b)}))
        pairs = [
            Pair(rows[a], rows[b], d, c, t) for a, b, d, c, t in found if a in rows and b in rows
        ]
        decided = self.resolutions.decided(tenant, {row["sha256"] for row in rows.values()})
        pairs = [p for p in pairs if not decided_against(p, decided)]
        by_id = {row["id"]: row for row in rows.values()}
        near = connected((p.a["id"], p.b["id"]) for p in pairs if p.phash_distance is not None)
        return Review(
            pairs_version=pairs_version,
            catalog_version=catalog_version,
            pairs=found,
            exact=exact,
            exact_files=exact_files,
            near=near,
            near_suggested=[suggest([by_id[i] for i in group]) for group in near],
            groups=duplicate_groups(pairs, suggest),
            rows=by_id,
        )
