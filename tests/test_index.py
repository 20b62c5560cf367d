"""busque.index: pHash MIH vs brute force, FAISS kinds, hybrid ranking, snapshots."""

from __future__ import annotations

import json

import numpy as np
import pytest

from busque.index import HybridIndex, PhashIndex, VectorIndex, snapshot
from busque.index.phash_index import flip_masks, substring_radii
from busque.storage import LocalObjectStore

U64 = np.uint64


def random_codes(rng, n):
    return rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)


def flip(rng, code, nbits):
    bits = rng.choice(64, nbits, replace=False)
    mask = 0
    for b in bits:
        mask |= 1 << int(b)
    return U64(int(code) ^ mask)


def brute(ids, codes, q, radius):
    d = np.bitwise_count(codes ^ U64(q))
    keep = np.flatnonzero(d <= radius)
    return sorted(
        zip(ids[keep].tolist(), d[keep].tolist(), strict=True), key=lambda t: (t[1], t[0])
    )


@pytest.fixture(scope="module")
def planted():
    """100k random codes plus, for 50 queries, planted codes at distances 0..10."""
    rng = np.random.default_rng(1)
    n = 100_000
    codes = random_codes(rng, n)
    queries = random_codes(rng, 50)
    extra = []
    for q in queries:
        for d in range(0, 11):
            extra.append(flip(rng, q, d))
    codes = np.concatenate([codes, np.array(extra, dtype=np.uint64)])
    ids = np.arange(len(codes), dtype=np.int64) * 7 + 3
    return ids, codes, queries


# -- pHash -------------------------------------------------------------------------------


def test_pigeonhole_radii():
    for r in range(0, 20):
        radii = substring_radii(r)
        assert sum(x + 1 for x in radii) >= r + 1
    assert substring_radii(8) == [2, 2, 2]
    assert len(flip_masks(22, 2)) == 1 + 22 + 231


@pytest.mark.parametrize("mih", [True, False])
def test_radius_search_finds_every_planted_code(planted, mih):
    ids, codes, queries = planted
    index = PhashIndex(mih_threshold=1000 if mih else 10**9)
    index.add(ids, codes)
    assert index.uses_mih is mih
    n_random = 100_000
    for qi, q in enumerate(queries):
        got = index.search_radius(q, 8)
        assert got == brute(ids, codes, q, 8)
        got_ids = {i for i, _ in got}
        for d in range(0, 11):
            planted_id = int(ids[n_random + qi * 11 + d])
            assert (planted_id in got_ids) is (d <= 8)
        assert all(dist <= 8 for _, dist in got)
        assert [t[1] for t in got] == sorted(t[1] for t in got)


def test_mih_equals_brute_force_on_random_queries(planted):
    ids, codes, _ = planted
    index = PhashIndex(mih_threshold=1000)
    index.add(ids, codes)
    rng = np.random.default_rng(5)
    # queries near stored codes and far from them, several radii
    near = [flip(rng, codes[i], int(rng.integers(0, 6))) for i in rng.choice(len(codes), 20)]
    far = list(random_codes(rng, 20))
    for q in near + far:
        for r in (0, 3, 8, 11):
            assert index.search_radius(q, r) == brute(ids, codes, q, r)
        got = index.knn(q, 5)
        want = brute(ids, codes, q, 64)[:5]
        assert got == want


@pytest.mark.parametrize("mih", [True, False])
def test_search_radius_many_equals_one_search_per_code(planted, mih):
    ids, codes, queries = planted
    index = PhashIndex(mih_threshold=1000 if mih else 10**9, tail_min=100, tail_fraction=0.0)
    index.add(ids[:80_000], codes[:80_000])
    index.add(ids[80_000:], codes[80_000:])  # the rest in the tail
    index.remove(ids[::97])  # tombstones
    rng = np.random.default_rng(9)
    asked = np.concatenate([queries, random_codes(rng, 30), codes[rng.choice(len(codes), 30)]])
    for radius in (0, 8, 40):  # 40: too wide to probe, scanned
        if radius == 40:  # nearly every code matches: a fifth of the queries (2 batches)
            asked = asked[::5]
        q, found, dist = index.search_radius_many(asked, radius, batch=16)
        got = {
            i: sorted(
                zip(found[q == i].tolist(), dist[q == i].tolist(), strict=True),
                key=lambda t: (t[1], t[0]),
            )
            for i in range(len(asked))
        }
        assert got == {i: index.search_radius(c, radius) for i, c in enumerate(asked)}, radius


def test_a_search_of_every_code_builds_the_tables_the_index_does_not_keep(planted):
    """Below mih_threshold, and in the tail, the index keeps no tables and scans: a batch of
    every item's codes (a search for duplicate pairs) scanned them quadratically (20,000
    items: 10 s). Such a batch builds tables for itself, with the same answer."""
    from busque.index.phash_index import _tables_for_batch

    ids, codes, _ = planted
    ids = np.concatenate([ids[:11_450], ids[100_000:]])  # random codes and the planted ones
    codes = np.concatenate([codes[:11_450], codes[100_000:]])
    index = PhashIndex(tail_min=5000)  # mih_threshold 50,000: no tables kept
    index.add(ids[:7000], codes[:7000])  # over tail_min: frozen
    index.add(ids[7000:], codes[7000:])  # 5,000: the tail
    index.remove(ids[:7000:50])  # tombstones in the frozen part
    assert not index.uses_mih and len(index._tail_ids) == 5000
    assert _tables_for_batch(codes[:5000], len(codes), 8) is not None  # both parts use them
    assert _tables_for_batch(codes[:5000], 100, 8) is None  # a few queries: a scan is cheaper
    assert _tables_for_batch(codes[:1000], len(codes), 8) is None  # few codes: likewise
    assert _tables_for_batch(codes[:5000], len(codes), 40) is None  # too wide to probe
    q, found, dist = index.search_radius_many(codes, 8)
    got: dict[int, list] = {i: [] for i in range(len(codes))}
    for i, media_id, d in zip(q.tolist(), found.tolist(), dist.tolist(), strict=True):
        got[i].append((media_id, d))
    for i, code in enumerate(codes):
        assert sorted(got[i], key=lambda t: (t[1], t[0])) == index.search_radius(code, 8), i
    assert sum(map(len, got.values())) > len(codes)  # planted neighbours found, not only selves


def test_phash_removes_tail_and_upserts(planted):
    ids, codes, queries = planted
    index = PhashIndex(mih_threshold=1000, tail_min=100, tail_fraction=0.0)
    index.add(ids[:50_000], codes[:50_000])
    index.add(ids[50_000:], codes[50_000:])  # second batch: goes to the tail, then rebuilt
    n = len(ids)
    assert len(index) == n
    q = queries[0]
    hits = index.search_radius(q, 8)
    assert hits
    victim = hits[0][0]
    assert index.remove([victim, 10**12]) == 1
    assert len(index) == n - 1
    assert victim not in {i for i, _ in index.search_radius(q, 8)}
    assert index.get(victim) is None
    # removed from the tail too
    index.add([10**9], [q])
    assert index.search_radius(q, 0)[0] == (10**9, 0)
    index.remove([10**9])
    assert 10**9 not in {i for i, _ in index.search_radius(q, 8)}
    # upsert moves the code
    index.add([victim], [q])
    assert index.search_radius(q, 0) == [(victim, 0)]
    index.rebuild()
    assert index.search_radius(q, 0) == [(victim, 0)]
    assert len(index) == n


def test_phash_signed_and_hex_codes_and_bytes_round_trip():
    index = PhashIndex()
    code = 0xFEDCBA9876543210
    signed = code - (1 << 64)
    index.add([1, 2], np.array([signed, 5], dtype=np.int64))
    assert index.search_radius(f"{code:016x}", 0) == [(1, 0)]
    assert index.get(1) == code
    back = PhashIndex.from_bytes(index.to_bytes())
    assert back.search_radius(code, 64) == index.search_radius(code, 64)
    assert len(back) == 2


# -- vectors -----------------------------------------------------------------------------


def clustered(rng, n, dim, centers=50, noise=0.3):
    c = rng.standard_normal((centers, dim)).astype(np.float32)
    x = c[rng.integers(0, centers, n)] + noise * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def vectors():
    rng = np.random.default_rng(2)
    x = clustered(rng, 6000, 64)
    q = clustered(np.random.default_rng(3), 50, 64)
    return x, q


def recall(got, want):
    return np.mean([len(set(g) & set(w)) / len(w) for g, w in zip(got, want, strict=True)])


@pytest.mark.parametrize(
    "kind,options",
    [
        ("hnsw", {}),
        ("hnsw", {"storage": "sq8"}),
        ("ivf", {"nlist": 32, "nprobe": 8}),
        ("ivf", {"nlist": 32, "nprobe": 8, "storage": "fp16"}),
    ],
)
def test_approximate_kinds_recall_against_flat(vectors, kind, options):
    x, q = vectors
    ids = np.arange(len(x)) + 1000
    flat = VectorIndex(64, "flat")
    flat.add(ids, x)
    approx = VectorIndex(64, kind, **options)
    approx.add(ids, x)
    assert approx.active_kind == kind and len(approx) == len(x)
    _, want = flat.search(q, 10)
    scores, got = approx.search(q, 10)
    assert recall(got, want) >= 0.9
    assert np.all(np.diff(scores, axis=1) <= 1e-5)


def test_flat_is_exact(vectors):
    x, q = vectors
    flat = VectorIndex(64, "flat")
    flat.add(np.arange(len(x)), x)
    scores, ids = flat.search(q, 5)
    exact = q @ x.T
    want = np.argsort(-exact, axis=1)[:, :5]
    assert (ids == want).all()
    np.testing.assert_allclose(scores, np.take_along_axis(exact, want, axis=1), atol=1e-5)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf", "auto"])
def test_vector_removes_upserts_and_serialization(vectors, kind):
    x, q = vectors
    options = {"nlist": 16} if kind == "ivf" else {}
    if kind == "auto":
        options = {"flat_threshold": 2000, "large_kind": "hnsw"}
    index = VectorIndex(64, kind, **options)
    ids = np.arange(len(x))
    index.add(ids, x)
    if kind == "auto":
        assert index.active_kind == "hnsw"
    _, top = index.search(x[:20], 1)
    assert (top[:, 0] == ids[:20]).all()
    assert index.remove(ids[:10]) == 10
    assert index.remove([10**9]) == 0
    assert len(index) == len(x) - 10
    _, top = index.search(x[:20], 5)
    assert not set(top.ravel().tolist()) & set(range(10))
    assert (top[10:, 0] == ids[10:20]).all()
    assert index.reconstruct(3) is None and index.reconstruct(15) is not None
    # exclude
    _, top = index.search(x[10:11], 3, exclude=[10])
    assert 10 not in top
    # upsert a removed id with a new vector, and an existing one
    index.add([3, 15], np.stack([x[100], x[200]]))
    _, top = index.search(np.stack([x[100], x[200]]), 2)
    assert set(top[0]) == {3, 100} and set(top[1]) == {15, 200}
    assert len(index) == len(x) - 9
    back = VectorIndex.deserialize(index.serialize())
    assert back.active_kind == index.active_kind and len(back) == len(index)
    s1, i1 = index.search(q, 10)
    s2, i2 = back.search(q, 10)
    assert (i1 == i2).all()
    np.testing.assert_allclose(s1, s2)
    back.remove([15])
    assert 15 not in back.search(x[200:201], 5)[1]
    back.rebuild()
    assert len(back) == len(x) - 10
    assert 15 not in back.search(x[200:201], 5)[1]


def test_hnsw_compacts_after_many_removes(vectors):
    x, _ = vectors
    index = VectorIndex(64, "hnsw", compact_fraction=0.1)
    index.add(np.arange(len(x)), x)
    index.remove(np.arange(1000))
    assert index._n_dead == 0 and index._index.ntotal == len(x) - 1000
    _, top = index.search(x[:1000], 3)
    assert (top >= 1000).all()


def test_empty_indexes():
    for kind in ("flat", "hnsw", "ivf"):
        index = VectorIndex(8, kind)
        scores, ids = index.search(np.ones(8), 3)
        assert (ids == -1).all() and len(index) == 0
        assert index.remove([1]) == 0
        back = VectorIndex.deserialize(index.serialize())
        assert len(back) == 0
    assert PhashIndex().search_radius(0, 8) == [] and PhashIndex().knn(0, 3) == []


# -- hybrid ------------------------------------------------------------------------------


def unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture()
def hybrid_world():
    """A query and: a near duplicate (close in both), a visual look-alike with a far pHash,
    a pHash collision that looks different, an exact copy (same sha256), and filler."""
    rng = np.random.default_rng(7)
    dim = 32
    base = unit(rng.standard_normal(dim))
    qcode = int(random_codes(rng, 1)[0])

    def near(v, eps):
        return unit(v + eps * unit(rng.standard_normal(dim)))

    index = HybridIndex(dim)
    index.add(1, near(base, 0.25), int(flip(rng, qcode, 3)), "aa" * 32)  # near dup, both
    index.add(2, near(base, 0.18), int(flip(rng, qcode, 30)), "bb" * 32)  # visual only
    index.add(3, unit(rng.standard_normal(dim)), int(flip(rng, qcode, 1)), "cc" * 32)  # pHash only
    for i in range(10, 200):
        index.add(i, unit(rng.standard_normal(dim)), int(random_codes(rng, 1)[0]), f"{i:064x}")
    return index, base, qcode


def test_hybrid_ranks_the_pair_close_in_both_first(hybrid_world):
    index, base, qcode = hybrid_world
    visual = index.search(vector=base, k=3, mode="visual")
    phash = index.search(phash=qcode, k=3, mode="phash")
    hybrid = index.search(vector=base, phash=qcode, k=500, mode="hybrid")
    assert visual[0].media_id == 2  # visual alone prefers the look-alike
    assert phash[0].media_id == 3  # pHash alone prefers the collision
    assert hybrid[0].media_id == 1  # hybrid prefers the one close in both
    by_id = {m.media_id: m for m in hybrid}
    assert by_id[1].score > by_id[2].score and by_id[1].score > by_id[3].score
    m = by_id[1]
    assert m.phash_distance == 3
    cos = 1 - m.distance
    assert m.score == pytest.approx(0.7 * cos + 0.3 * (1 - 3 / 64))
    assert visual[0].phash_distance is None and phash[0].distance is None


def test_hybrid_exact_duplicate_first_and_flagged(hybrid_world):
    index, base, qcode = hybrid_world
    index.add(500, base, qcode, "DD" * 32)
    got = index.search(vector=base, phash=qcode, k=3, sha256="dd" * 32)
    assert got[0].media_id == 500 and got[0].exact_duplicate
    assert got[0].score == pytest.approx(1.0) and got[0].phash_distance == 0
    assert not any(m.exact_duplicate for m in got[1:])
    for mode in ("hybrid", "visual"):  # never past 1 or below a distance of 0 by rounding
        top = index.search(vector=base, phash=qcode, k=1, mode=mode)[0]
        assert top.score <= 1.0 and top.distance >= 0.0
    assert index.find_sha256("dd" * 32) == [500]
    # excluded (the query itself), min_score, removal
    got = index.search(vector=base, phash=qcode, k=3, exclude_ids=[500])
    assert 500 not in [m.media_id for m in got] and got[0].media_id == 1
    assert all(m.score >= 0.9 for m in index.search(vector=base, phash=qcode, min_score=0.9))
    assert index.remove(500) == 1 and index.remove(500) == 0
    assert index.find_sha256("dd" * 32) == []
    assert 500 not in [m.media_id for m in index.search(vector=base, phash=qcode)]
    near = index.near_duplicates(qcode, 8)
    assert [m.media_id for m in near] == [3, 1]
    assert [m.phash_distance for m in near] == [1, 3]


def test_hybrid_items_without_vector_or_phash(hybrid_world):
    index, base, qcode = hybrid_world
    index.add(600, None, qcode, None)
    index.add(601, base, None, None)
    got = {m.media_id: m for m in index.search(vector=base, phash=qcode, k=500)}
    assert got[600].distance is None and got[600].phash_distance == 0
    assert got[601].phash_distance is None and got[601].distance == pytest.approx(0, abs=1e-5)
    with pytest.raises(ValueError):
        index.search(k=3)
    with pytest.raises(ValueError):
        index.search(phash=qcode, mode="visual")


# -- snapshots ---------------------------------------------------------------------------


def test_snapshot_round_trip_manifest_and_prune(tmp_path, hybrid_world):
    index, base, qcode = hybrid_world
    store = LocalObjectStore(root=tmp_path, signing_key="k", public_url="http://x")
    assert snapshot.load(store, "t1", "pets") is None
    v1 = snapshot.save(store, "t1", "pets", index, last_seq=41)
    loaded, seq = snapshot.load(store, "t1", "pets")
    assert seq == 41 and len(loaded) == len(index)
    for mode in ("hybrid", "visual", "phash"):
        want = index.search(vector=base, phash=qcode, k=10, mode=mode, sha256="aa" * 32)
        assert loaded.search(vector=base, phash=qcode, k=10, mode=mode, sha256="aa" * 32) == want
    assert loaded.find_sha256("aa" * 32) == [1]
    assert loaded.w_visual == index.w_visual

    loaded.remove(1)
    versions = [v1]
    for seq in range(42, 46):
        versions.append(snapshot.save(store, "t1", "pets", loaded, last_seq=seq))
    assert versions == sorted(versions) and len(set(versions)) == 5
    manifest = json.loads(store.get("_index/t1/pets/manifest.json"))
    assert manifest["version"] == versions[-1] and manifest["last_seq"] == 45
    for name in ("vectors.faiss", "phash.npy", "meta.json"):
        assert store.stat(f"_index/t1/pets/{versions[-1]}/{name}") is not None
    again, seq = snapshot.load(store, "t1", "pets")
    assert seq == 45 and 1 not in again
    assert 1 not in [m.media_id for m in again.search(vector=base, phash=qcode)]

    deleted = snapshot.prune(store, "t1", "pets", keep=2)
    assert deleted == versions[:3]
    assert snapshot.versions(store, "t1", "pets") == versions[3:]
    assert snapshot.load(store, "t1", "pets")[1] == 45
    # other collections are separate
    assert snapshot.load(store, "t1", "other") is None
    with pytest.raises(ValueError):
        snapshot.save(store, "t1", "a/b", index, last_seq=1)


def test_snapshot_detects_corruption(tmp_path, hybrid_world):
    index, _, _ = hybrid_world
    store = LocalObjectStore(root=tmp_path, signing_key="k", public_url="http://x")
    version = snapshot.save(store, "t", "c", index, last_seq=1, keep=1)
    key = f"_index/t/c/{version}/phash.npy"
    store.put(key, store.get(key)[:-8])
    with pytest.raises(snapshot.SnapshotError):
        snapshot.load(store, "t", "c")


def test_negative_ids_are_refused():
    from busque.index.hybrid import HybridIndex

    index = HybridIndex(4)
    with pytest.raises(ValueError, match=">= 0"):
        index.add(-5, np.ones(4, dtype=np.float32), 1)


# -- the GPU copy (index.device: cuda) --------------------------------------------------------


def test_a_gpu_index_without_faiss_gpu_is_refused_with_what_to_do(vectors):
    from busque.index.device import gpu_unavailable_reason

    if gpu_unavailable_reason() is None:
        pytest.skip("this machine has FAISS's GPU build and a GPU")
    index = VectorIndex(vectors[0].shape[1], "flat")
    with pytest.raises(RuntimeError, match="install-gpu-faiss.sh|sees no GPU"):
        index.place("cuda")
    assert index.device == "cpu"
    with pytest.raises(ValueError, match="must be one of"):
        index.place("tpu")


def test_a_gpu_index_needs_a_kind_faiss_has_on_gpus():
    from pydantic import ValidationError

    from busque.config import IndexSettings

    assert IndexSettings(device="cuda", vector_index="flat").device == "cuda"
    assert IndexSettings(device="cuda", vector_index="ivf").device == "cuda"
    for kind in ("auto", "hnsw"):
        with pytest.raises(ValidationError, match="needs vector_index flat or ivf"):
            IndexSettings(device="cuda", vector_index=kind)


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_the_device_copy_is_made_again_after_every_write(vectors, kind, monkeypatch):
    """The copy's bookkeeping only: no GPU here, so a CPU clone (faiss.clone_index) stands in
    for faiss.index_cpu_to_gpu. Every search sees every write; a copy is made once per run of
    searches between writes."""
    import faiss

    from busque.index import device

    copies = []

    def clone(index, nprobe):
        copies.append(nprobe)
        return faiss.clone_index(index)

    monkeypatch.setattr(device, "check_device", lambda where: None)
    monkeypatch.setattr(device, "to_gpu", clone)
    x, _ = vectors
    index = VectorIndex(x.shape[1], kind, nlist=16)
    index.add(np.arange(3000), x[:3000])
    index.place("cuda")
    for _ in range(3):
        assert index.search(x[7], 1)[1][0, 0] == 7
    assert len(copies) == 1
    index.add([9000], x[3500])
    assert index.search(x[3500], 1)[1][0, 0] == 9000  # the copy has the new vector
    index.remove([9000, 7])
    _, ids = index.search(x[[3500, 7]], 3)
    assert 9000 not in ids and 7 not in ids
    assert len(copies) == 3
    index.search(x[0], device.GPU_MAX_K + 1)  # past the GPU's k: the CPU index
    assert len(copies) == 3
