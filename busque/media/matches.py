"""The match view: a Matcher's hits joined with the catalog, as the ingest job's result and
`POST /v1/search` both show them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from busque.media.catalog import Catalog
from busque.models.embedding.efficientnet import pet_label


def joined(
    catalog: Catalog, tenant: str, found: list[dict], filters: dict[str, Any] | None = None
) -> Iterator[tuple[dict, dict]]:
    """(hit, catalog row) for each hit whose media item still exists (deleted since: skipped)
    and whose metadata has every `filters` value, best first."""
    rows = catalog.by_index_ids(tenant, [m["media_id"] for m in found])
    for match in found:
        row = rows.get(match["media_id"])
        if row is None or any(row["metadata"].get(k) != v for k, v in (filters or {}).items()):
            continue
        yield match, row


def match_view(rank: int, match: dict, row: dict) -> dict[str, Any]:
    return {
        "rank": rank,
        "media_id": row["id"],
        "score": round(match["score"], 6),
        "distance": match["distance"],
        "phash_distance": match["phash_distance"],
        "exact_duplicate": match["exact_duplicate"],
        "near_duplicate": match["near_duplicate"],
        "labels": row["labels"],
        "metadata": row["metadata"],
    }


def breed_of(labels: list[dict], metadata: dict | None) -> str | None:
    """A catalogued photo's breed: the one it was ingested with (metadata `breed`), else the
    one its ImageNet labels suggest."""
    given = (metadata or {}).get("breed")
    if isinstance(given, str) and given.strip():
        return given
    return pet_label(labels)["breed"]
