"""Rebuild a collection's hybrid index from the catalog and publish it as a new snapshot.

From the stored embeddings (the fast path), or recomputing every embedding with the configured
embedder (a new or updated model): Ray Data reads the originals from the object store in a
`map_batches` actor pool (pipelines/reindex/embed.py) that decodes and embeds them as the ingest
job does (GPU actors when `pipelines.num_gpus` is set), and the new vectors are written back to the catalog. The index
(FAISS type by size, trained where needed) is saved as a new versioned snapshot and the manifest
switched in one PUT; serving Matchers see the newer version at their next sync and swap it in
whole, so no query fails. Changes made while it runs are replayed on top (the snapshot records
the change-log id it includes).

    python -m pipelines.reindex --tenant TENANT --collection NAME [--recompute]

The pipeline is handed the composition root's Runtime (busque/runtime.py) by its caller.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from busque.index import snapshot
from busque.index.hybrid import HybridIndex
from busque.media.catalog import bytes_to_vector, check_collection
from busque.models.base import ModelError
from pipelines.reindex.embed import EmbedStored

logger = logging.getLogger("busque.pipelines")

PAGE = 2000

Progress = Callable[[float, str], None]


def _rows(catalog, tenant: str, collection: str) -> list[dict]:
    rows, after = [], ""
    while page := catalog.indexed_rows(tenant, collection, after=after, limit=PAGE):
        rows.extend(page)
        after = page[-1]["id"]
    return rows


def _recompute(runtime, rows: list[dict], progress: Progress) -> dict[str, tuple]:
    """media id -> (vector, labels, turns' pHashes or None), computed by a Ray Data actor
    pool."""
    import json

    import ray

    cfg = runtime.settings.pipelines
    items = [
        {"id": r["id"], "original_key": r["original_key"], "normalized_key": r["normalized_key"]}
        for r in rows
    ]
    dataset = ray.data.from_items(items).map_batches(
        EmbedStored,
        fn_constructor_args=(runtime,),
        batch_size=cfg.batch_size,
        compute=ray.data.ActorPoolStrategy(size=cfg.actors),
        num_cpus=cfg.num_cpus,
        num_gpus=cfg.num_gpus,
    )
    found: dict[str, tuple] = {}
    for batch in dataset.iter_batches(batch_size=cfg.batch_size, batch_format="numpy"):
        for media_id, data, labels, variants in zip(
            batch["id"], batch["embedding"], batch["labels"], batch["phash_variants"], strict=True
        ):
            turns = bytes(variants) or None
            found[str(media_id)] = (bytes_to_vector(bytes(data)), json.loads(labels), turns)
        progress(10 + 70 * len(found) / max(1, len(rows)), f"embedded {len(found)}/{len(rows)}")
    return found


def reindex(
    runtime,
    tenant: str,
    collection: str,
    *,
    recompute: bool = False,
    progress: Progress = lambda percent, message: None,
) -> dict:
    check_collection(collection)
    started = time.perf_counter()
    settings = runtime.settings
    settings.ensure_secrets()
    catalog, objects = runtime.catalog, runtime.objects
    # Everything up to this change is in the snapshot; a Matcher replays what comes after
    # (an item added meanwhile may be in both: adding is idempotent).
    last_seq = catalog.last_change(tenant, collection)
    if last_seq == 0:  # nothing was ever added to it: a typo, not an empty collection
        known = [c["collection"] for c in catalog.collections(tenant)]
        raise ModelError(
            "collection_not_found",
            f"no collection {collection!r}; the tenant has "
            + (", ".join(repr(name) for name in known) if known else "none yet"),
        )
    rows = _rows(catalog, tenant, collection)
    progress(10, f"{len(rows)} media to index")
    model = None
    if recompute and rows:
        describe = runtime.new_embedder().describe()
        model, version = describe["model"], describe["version"]
        fresh = _recompute(runtime, rows, progress)
        updated = catalog.set_embeddings(
            [(media_id, *found) for media_id, found in fresh.items()],
            model,
            version,
        )
        for row in rows:
            if row["id"] in fresh:
                row["embedding"] = np.asarray(fresh[row["id"]][0], dtype="<f4").tobytes()
        logger.info("reindex %s/%s: %d embeddings recomputed", tenant, collection, updated)
    rows = [r for r in rows if r["embedding"] is not None]
    dim = (
        len(bytes_to_vector(rows[0]["embedding"]))
        if rows
        else runtime.new_embedder().describe()["dim"]
    )
    cfg = settings.index
    index = HybridIndex(
        dim,
        w_visual=cfg.w_visual,
        w_phash=1 - cfg.w_visual,
        vector_options={"kind": cfg.vector_index},
    )
    built = time.perf_counter()
    if rows:
        index.add_many(
            [r["index_id"] for r in rows],
            np.stack([bytes_to_vector(r["embedding"]) for r in rows]),
            [r["phash"] for r in rows],
            [r["sha256"] for r in rows],
        )
    build_s = time.perf_counter() - built
    progress(90, f"index built ({len(index)} items)")
    version = snapshot.save(objects, tenant, collection, index, last_seq, keep=cfg.keep_snapshots)
    progress(100, f"snapshot {version} published")
    return {
        "tenant": tenant,
        "collection": collection,
        "count": len(index),
        "version": version,
        "last_seq": last_seq,
        "recomputed": bool(recompute),
        "embedding_model": model,
        "index_kind": index.vectors.active_kind,
        "build_s": round(build_s, 3),
        "seconds": round(time.perf_counter() - started, 3),
    }
