"""Duplicate groups from the pairs the indices found (busque.index.live.duplicate_pairs): each
pair says why it matched (`exact` bytes, `phash` within the radius, `rotated` or `mirrored`
when the pHashes matched once one is turned or mirrored, `visual` embeddings at least
min_cosine alike, `hybrid` a hybrid score at least min_score) and how close; pairs decided "not duplicates" are left out; a group is
what the remaining pairs connect, with the item a resolve keeps by default and the bytes
resolving it saves. Pure functions over catalog rows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from busque.media.phash import ROTATIONS


@dataclass(frozen=True)
class Pair:
    a: dict  # catalog rows
    b: dict
    phash_distance: int | None
    cosine: float | None
    transform: str | None = None  # the turn or mirror of `a` or `b` the pHashes matched in
    score: float | None = None  # the hybrid score of a pair only the hybrid path kept


def sha_pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def decided_apart(a: str, b: str, decided: set[tuple[str, str]]) -> bool:
    """Whether bytes a and b (sha256) were decided "not duplicates"."""
    return a != b and sha_pair(a, b) in decided  # the same bytes are always duplicates


def decided_against(found: Pair, decided: set[tuple[str, str]]) -> bool:
    return decided_apart(found.a["sha256"], found.b["sha256"], decided)


def reasons(found: Pair) -> list[str]:
    why = ["exact"] if found.a["sha256"] == found.b["sha256"] else []
    if found.phash_distance is not None:
        if found.transform is None:
            why.append("phash")
        else:
            why.append("rotated" if found.transform in ROTATIONS else "mirrored")
    if found.score is not None:
        why.append("hybrid")
    elif found.cosine is not None:
        why.append("visual")
    return why


def connected(edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """The groups (two or more ids) that the edges connect, each sorted, in order."""
    parent: dict[str, str] = {}

    def root(i: str) -> str:
        parent.setdefault(i, i)
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in edges:
        parent[root(a)] = root(b)
    groups: dict[str, list[str]] = {}
    for i in list(parent):
        groups.setdefault(root(i), []).append(i)
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


def duplicate_groups(pairs: Sequence[Pair], suggest) -> list[dict]:
    """Groups with their pairs, the suggested item to keep and the bytes saved by keeping only
    it, the largest savings first."""
    rows = {p.a["id"]: p.a for p in pairs} | {p.b["id"]: p.b for p in pairs}
    groups = connected((p.a["id"], p.b["id"]) for p in pairs)
    member_of = {media_id: n for n, group in enumerate(groups) for media_id in group}
    pairs_of: list[list[Pair]] = [[] for _ in groups]
    for p in pairs:
        pairs_of[member_of[p.a["id"]]].append(p)
    out = []
    for group, found in zip(groups, pairs_of, strict=True):
        members = [rows[media_id] for media_id in group]
        keep = suggest(members)
        out.append(
            {
                "media_ids": [keep, *(m for m in group if m != keep)],
                "suggested": keep,
                "savings_bytes": sum(rows[m]["bytes"] for m in group if m != keep),
                "pairs": [
                    {
                        "a": p.a["id"],
                        "b": p.b["id"],
                        "why": reasons(p),
                        "phash_distance": p.phash_distance,
                        "transform": p.transform,
                        "cosine": p.cosine,
                        "score": p.score,
                    }
                    for p in found
                ],
            }
        )
    return sorted(out, key=lambda g: (-g["savings_bytes"], g["suggested"]))
