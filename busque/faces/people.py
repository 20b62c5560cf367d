"""People: faces clustered incrementally, in Immich's manner (density based).

A face with at least `min_faces` faces (itself included) within `max_distance` is a core face:
it joins the nearest person among those neighbours, or founds a new person. A face with fewer
neighbours joins the nearest neighbour's person if there is one, else waits: it is tried again
whenever a new face lands within `max_distance` of it (the only event that can change its
answer). Two faces of one photo are never the same person.
"""

from __future__ import annotations

from collections.abc import Sequence

from busque.faces.index import FaceIndex
from busque.faces.store import FaceStore


def cluster(
    store: FaceStore,
    index: FaceIndex,
    tenant_id: str,
    new_seqs: Sequence[int],
    *,
    max_distance: float,
    min_faces: int,
) -> dict[int, str]:
    """Assign the new faces (and the waiting faces near them) to people; returns
    {seq: person_id} for every face this call assigned."""
    if not new_seqs:
        return {}
    with store.people_lock(tenant_id) as conn:
        index.sync(tenant_id)  # everything committed before the lock was taken
        neighbours: dict[int, list[tuple[int, float]]] = {}

        def near(seqs):
            if not seqs:
                return
            vectors = index.vectors(tenant_id, list(seqs))
            for seq, vector in zip(seqs, vectors, strict=True):
                neighbours[seq] = index.neighbours(tenant_id, vector, max_distance)

        near(list(new_seqs))
        state = store.people_of(conn, {n for found in neighbours.values() for n, _ in found})
        waiting = sorted(
            {
                n
                for found in neighbours.values()
                for n, _ in found
                if n not in neighbours and n in state and state[n]["person_id"] is None
            }
        )
        near(waiting)
        state |= store.people_of(
            conn, {n for found in neighbours.values() for n, _ in found} - state.keys()
        )
        index.forget(tenant_id, [n for f in neighbours.values() for n, _ in f if n not in state])
        taken = store.people_in_media(conn, (face["media_id"] for face in state.values()))

        assigned: dict[int, str] = {}
        # Two passes: a face looked at before its neighbours had a person gets a second look.
        for _ in range(2):
            for seq in sorted(neighbours):
                face = state.get(seq)
                if face is None or face["person_id"] is not None:
                    continue
                found = [(n, d) for n, d in neighbours[seq] if n in state]
                busy = taken.get(face["media_id"], set())
                person = next(
                    (
                        state[n]["person_id"]
                        for n, _ in found
                        if state[n]["person_id"] and state[n]["person_id"] not in busy
                    ),
                    None,
                )
                if person is None and len(found) >= min_faces:
                    person = store.create_person(conn, tenant_id, face["id"])
                if person is None:
                    continue
                store.assign(conn, seq, person)
                face["person_id"] = person
                taken.setdefault(face["media_id"], set()).add(person)
                assigned[seq] = person
    return assigned
