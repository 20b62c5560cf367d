"""The duplicate review GET /v1/duplicates serves (busque.media.duplicate_review): computed from
a Matcher's pairs and the catalog, reused while neither changes, computed again as soon as one
does (a decision, a resolve, new pairs), on a real SQLite catalog."""

from __future__ import annotations

import random

import pytest

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


@pytest.mark.parametrize("seed", [4, 7, 11])
def test_a_refreshed_review_equals_one_computed_whole(world, seed):  # noqa: F811
    """Resolves, undos, decisions, items added and pairs that come and go, in a random order:
    after each, the review brought up to date (only the groups a change touches built again)
    is the one computing everything gives."""
    catalog, _, tenant = world
    resolutions = Resolutions(catalog.engine, catalog)
    reviews = DuplicateReviews(catalog, resolutions)
    computed = []
    compute = reviews._compute
    reviews._compute = lambda *args: computed.append(args) or compute(*args)
    rng = random.Random(seed)
    items = [index_one(catalog, tenant, seed) for seed in range(1, 31)]

    def some_pairs(n: int) -> dict[tuple, tuple]:
        out = {}
        for _ in range(n):
            a, b = sorted(rng.sample([i["index_id"] for i in items], 2))
            distance = rng.choice([None, 2, 6])
            out[a, b] = (distance, 0.9 if distance is None else rng.choice([None, 0.9]), None)
        return out

    def rows(pairs: dict) -> list[tuple]:  # as the Matcher sends them
        return [(a, b, *found) for (a, b), found in sorted(pairs.items())]

    pairs = some_pairs(30)
    key = (tenant, "c", 8, 0.8)
    known = reviews.review(key, None, answer("v0", *rows(pairs)))
    sent = rows(pairs)  # what the gateway has
    done, version, exact_seen = [], 0, False
    for step in range(40):
        action = rng.choice(["resolve", "resolve", "undo", "decide", "pairs", "add", "copy"])
        if action == "resolve" and known.groups:
            group = rng.choice(known.groups)
            done.append(resolutions.resolve(tenant, "c", [Group(tuple(group["media_ids"]))]))
        elif action == "undo" and done:
            resolutions.undo(tenant, done.pop(rng.randrange(len(done)))["resolution_id"])
        elif action == "decide" and known.groups:
            pair = rng.choice(rng.choice(known.groups)["pairs"])
            resolutions.not_duplicates(tenant, [pair["a"], pair["b"]])
        elif action == "pairs":
            for gone in rng.sample(sorted(pairs), 3):
                del pairs[gone]
            pairs |= some_pairs(3)
            version += 1
        elif action == "add":
            items.append(index_one(catalog, tenant, 100 + step))
            pairs |= some_pairs(2)
            version += 1
        elif action == "copy":  # the same bytes again: an exact group (or a larger one)
            items.append(index_one(catalog, tenant, rng.randrange(1, 31)))
            pairs |= some_pairs(1)
            version += 1
        found = {"version": f"v{version}", "pairs": rows(pairs)}
        if found["version"] == known.pairs_version:
            found["pairs"] = None  # the Matcher's "unchanged"
        elif rng.random() < 0.5:  # the Matcher's "what changed since yours"
            before, now = set(sent), set(found["pairs"])
            found["pairs"], found["changes"] = (
                None,
                {"added": now - before, "removed": before - now},
            )
        sent = rows(pairs)
        known = reviews.review(key, known, found)
        whole = compute(tenant, "c", known.pairs_version, known.catalog_version, rows(pairs))
        for field in ("groups", "near", "near_suggested", "exact", "exact_files"):
            assert getattr(known, field) == getattr(whole, field), (step, action, field)
        assert known.by_index.keys() == whole.by_index.keys(), (step, action)
        exact_seen |= bool(known.exact)
    assert exact_seen  # the copies made exact groups, refreshed like the rest
    assert len(computed) == 1  # the first review only: every later one was brought up to date
