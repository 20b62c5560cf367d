"""Faces, people and incremental clustering in the SQL store (SQLite and PostgreSQL), with
synthetic 128-d embeddings: the real face model is exercised in test_faces_model/test_faces_api."""

from __future__ import annotations

import numpy as np
import pytest

from busque.auth.keys import KeyStore
from busque.db.engine import make_engine
from busque.db.migrate import upgrade
from busque.faces.index import FaceIndex
from busque.faces.people import cluster
from busque.faces.store import Conflict, FaceStore
from busque.ids import new_id
from busque.media.catalog import Catalog
from tests.test_store import db_url  # noqa: F401 - the same per-test databases

RNG = np.random.default_rng(7)


def person_vector() -> np.ndarray:
    v = RNG.normal(size=128).astype("float32")
    return v / np.linalg.norm(v)


def near(v: np.ndarray, distance: float = 0.2) -> np.ndarray:
    noise = RNG.normal(size=128).astype("float32")
    noise -= noise.dot(v) * v
    return (v + noise / np.linalg.norm(noise) * distance).astype("float32")


@pytest.fixture
def world(db_url):  # noqa: F811
    upgrade(db_url)
    engine = make_engine(db_url)
    tenant = KeyStore(engine).ensure_tenant("acme")
    store = FaceStore(engine)
    yield Catalog(engine), store, FaceIndex(store), tenant
    engine.dispose()


def photo(catalog: Catalog, tenant: str) -> str:
    row = catalog.create(
        tenant,
        "family",
        sha256=new_id("x").ljust(64, "0")[:64],
        phash=1,
        width=100,
        height=100,
        format="jpeg",
        size=10,
        metadata={},
    )
    return row["id"]


def add_faces(world, vectors: list[np.ndarray]) -> tuple[str, list[dict], dict]:
    """One photo with these faces, stored and clustered like analyze_media does."""
    catalog, store, index, tenant = world
    media_id = photo(catalog, tenant)
    found = [
        {"id": new_id("face"), "box": [i * 10, 0, 10, 10], "score": 1.0, "embedding": v}
        for i, v in enumerate(vectors)
    ]
    rows, _ = store.replace_faces(tenant, media_id, found, "test")
    people = cluster(store, index, tenant, [r["seq"] for r in rows], max_distance=0.5, min_faces=3)
    return media_id, rows, people


def test_a_person_forms_once_enough_faces_are_near(world):
    catalog, store, index, tenant = world
    alice = person_vector()
    _, first, people = add_faces(world, [near(alice)])
    assert people == {}  # one face: not yet a person
    _, _, people = add_faces(world, [near(alice)])
    assert people == {}
    _, third, people = add_faces(world, [near(alice)])
    # The third face completes the density: it founds a person, and the two waiting faces
    # (its neighbours) are tried again and join.
    assert len(set(people.values())) == 1 and len(people) == 3
    person = next(iter(people.values()))
    listed, _ = store.list_people(tenant)
    assert [(p["id"], p["face_count"]) for p in listed] == [(person, 3)]
    assert store.get_face(tenant, first[0]["id"])["person_id"] == person
    _, _, people = add_faces(world, [near(alice)])
    assert list(people.values()) == [person]  # a fourth photo joins the existing person


def test_two_faces_of_one_photo_are_never_one_person(world):
    catalog, store, index, tenant = world
    bob = person_vector()
    for _ in range(3):
        add_faces(world, [near(bob)])
    # A photo with two faces that both look like bob (twins): at most one can be bob.
    media_id, rows, people = add_faces(world, [near(bob, 0.1), near(bob, 0.1)])
    assigned = [people.get(r["seq"]) for r in rows]
    assert len({p for p in assigned if p}) == len([p for p in assigned if p])
    faces = store.faces_of_media(tenant, [media_id])[media_id]
    persons = [f["person_id"] for f in faces if f["person_id"]]
    assert len(persons) == len(set(persons))


def test_different_people_stay_apart_and_merge_move_rename(world):
    catalog, store, index, tenant = world
    carol, dave = person_vector(), person_vector()
    for _ in range(3):
        add_faces(world, [near(carol)])
        add_faces(world, [near(dave)])
    people, _ = store.list_people(tenant)
    assert sorted(p["face_count"] for p in people) == [3, 3]
    p1, p2 = people[0]["id"], people[1]["id"]
    assert store.rename(tenant, p1, "Carol")["name"] == "Carol"
    assert store.rename("other-tenant", p1, "x") is None

    # Move one face out to a person of its own, then back.
    face = next(
        f for f in store.faces_of_media(tenant, store.person_media(tenant, p2)[0][:1]).popitem()[1]
    )
    moved = store.move_face(tenant, face["id"], "new")
    assert moved["person_id"] not in (p1, p2)
    assert store.move_face(tenant, face["id"], p2)["person_id"] == p2
    assert store.get_person(tenant, moved["person_id"]) is None  # left empty: gone

    merged = store.merge(tenant, p1, p2)
    assert merged["face_count"] == 6 and store.get_person(tenant, p2) is None
    assert store.merge(tenant, p1, "per_missing") is None


def test_merge_and_move_refuse_two_faces_of_one_photo(world):
    catalog, store, index, tenant = world
    erin, frank = person_vector(), person_vector()
    for _ in range(3):
        add_faces(world, [near(erin)])
        add_faces(world, [near(frank)])
    _, rows, people = add_faces(world, [near(erin), near(frank)])
    assert len(set(people.values())) == 2
    a, b = (people[r["seq"]] for r in rows)
    with pytest.raises(Conflict):
        store.merge(tenant, a, b)
    with pytest.raises(Conflict):
        store.move_face(tenant, rows[1]["id"], a)


def test_deleting_media_removes_faces_and_empty_people(world):
    catalog, store, index, tenant = world
    gina = person_vector()
    photos = [add_faces(world, [near(gina)])[0] for _ in range(3)]
    (person,) = store.list_people(tenant)[0]
    keys = []
    for media_id in photos:
        keys += catalog.delete(media_id, tenant)["face_keys"]
    assert store.list_people(tenant)[0] == []
    assert store.faces_of_media(tenant, photos) == {m: [] for m in photos}
    # The index drops what the store no longer has when a lookup finds it missing.
    index.sync(tenant)
    hits = index.search(tenant, np.stack([gina]), 5)[0]
    assert store.faces_by_seq(tenant, [s for s, _ in hits]) == {}


def test_replacing_faces_is_idempotent_for_retries(world):
    catalog, store, index, tenant = world
    media_id = photo(catalog, tenant)
    v = person_vector()
    face = {
        "id": new_id("face"),
        "box": [1, 2, 3, 4],
        "score": 0.9,
        "embedding": v,
        "thumbnail_key": f"{tenant}/faces/a.jpg",
    }
    store.replace_faces(tenant, media_id, [face], "test")
    retry = {**face, "id": new_id("face"), "thumbnail_key": f"{tenant}/faces/b.jpg"}
    rows, replaced = store.replace_faces(tenant, media_id, [retry], "test")
    assert replaced == [f"{tenant}/faces/a.jpg"]
    assert [f["id"] for f in store.faces_of_media(tenant, [media_id])[media_id]] == [retry["id"]]
    assert rows[0]["box"] == [1, 2, 3, 4]
    assert catalog.get(media_id)["faces_at"] is not None
    assert store.replace_faces(tenant, "med_missing", [face], "test") is None
    assert store.replace_faces("other-tenant", media_id, [face], "test") is None
