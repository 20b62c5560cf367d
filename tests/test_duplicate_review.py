"""The duplicate review GET /v1/duplicates serves (busque.media.duplicate_review): computed from
a Matcher's pairs and the catalog, reused while neither changes, computed again as soon as one
does (a decision, a resolve, new pairs), on a real SQLite catalog."""

from __future__ import annotations

from busque.media.duplicate_review import DuplicateReviews
from busque.media.resolve import Group, Resolutions
from tests.test_live_index import index_one, world  # noqa: F401 (a fixture)


def answer(version: str, *pairs) -> dict:
    return {"version": version, "complete": True, "pairs": list(pairs)}


def test_a_review_is_reused_until_the_pairs_or_the_catalog_change(world):  # noqa: F811
    catalog, _, tenant = world
    reviews = DuplicateReviews(catalog, Resolutions(catalog.engine, catalog))
    a, b, c = (index_one(catalog, tenant, seed) for seed in (1, 2, 3))
    key = (tenant, "c", 8, 0.8)
    pair_ab = (min(a["index_id"], b["index_id"]), max(a["index_id"], b["index_id"]), 3, None, None)

    first = reviews.review(key, None, answer("v1", pair_ab))
    assert [set(g["media_ids"]) for g in first.groups] == [{a["id"], b["id"]}]
    assert reviews.known(key) is first
    # The Matcher says "unchanged" (no pairs sent) and the catalog did not change: the same.
    assert reviews.review(key, first, {"version": "v1", "pairs": None}) is first

    # New pairs: computed again.
    pair_bc = (
        min(b["index_id"], c["index_id"]),
        max(b["index_id"], c["index_id"]),
        None,
        0.9,
        None,
    )
    second = reviews.review(key, first, answer("v2", pair_ab, pair_bc))
    assert [set(g["media_ids"]) for g in second.groups] == [{a["id"], b["id"], c["id"]}]

    # A decision: the pair is gone from the next review, though the pairs are the same.
    reviews.resolutions.not_duplicates(tenant, [b["id"], c["id"]])
    third = reviews.review(key, second, {"version": "v2", "pairs": None})
    assert third is not second
    assert [set(g["media_ids"]) for g in third.groups] == [{a["id"], b["id"]}]

    # A resolve trashes b: the catalog changed, and b's pairs leave the groups at once (the
    # Matcher may not have synced yet).
    reviews.resolutions.resolve(tenant, "c", [Group((a["id"], b["id"]), (a["id"],))])
    fourth = reviews.review(key, third, {"version": "v2", "pairs": None})
    assert fourth.groups == []
