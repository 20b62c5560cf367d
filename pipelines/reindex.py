"""Rebuild a collection's hybrid index from the catalog and publish it as a new snapshot.

From the stored embeddings (the fast path), or recomputing every embedding with the configured
embedder (a new or updated model): Ray Data reads the normalised images from the object store
in a `map_batches` actor pool of the same model class the Embedder deployment serves (GPU actors
when `pipelines.num_gpus` is set), and the new vectors are written back to the catalog. The index
(FAISS type by size, trained where needed) is saved as a new versioned snapshot and the manifest
switched in one PUT; serving Matchers see the newer version at their next sync and swap it in
whole, so no query fails. Changes made while it runs are replayed on top (the snapshot records
the change-log id it includes).

    python -m pipelines.reindex --tenant TENANT --collection NAME [--recompute]
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable

import numpy as np

from busque.config import Settings
from busque.index import snapshot
from busque.index.hybrid import HybridIndex
from busque.media.catalog import bytes_to_vector, check_collection

logger = logging.getLogger("busque.pipelines")

PAGE = 2000

Progress = Callable[[float, str], None]


def collection_arg(value: str) -> str:
    """check_collection as an argparse type (its message in argparse's error)."""
    try:
        return check_collection(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class EmbedNormalized:
    """A map_batches callable: normalised image keys -> embeddings and labels, with the model
    class the Embedder deployment uses (no Ray in it)."""

    def __init__(self, settings: dict):
        from busque.serve.embedder import build_embedder
        from busque.storage import open_object_store

        self.settings = Settings.model_validate(settings)
        self.objects = open_object_store(self.settings.storage, self.settings.serve.public_url)
        self.model = build_embedder(self.settings)
        self.model.load()

    def __call__(self, batch: dict) -> dict:
        from busque.media.decode import decode_reduced

        side = self.model.source_side
        images = [
            decode_reduced(self.objects.get(key), min_side=side) for key in batch["normalized_key"]
        ]
        vectors, labels = self.model.analyze(images, 5)
        return {
            "id": batch["id"],
            "embedding": [np.asarray(v, dtype="<f4").tobytes() for v in vectors],
            "labels": [_json(top) for top in labels],
        }


def _json(value) -> str:
    import json

    return json.dumps(value)


def _rows(catalog, tenant: str, collection: str) -> list[dict]:
    rows, after = [], ""
    while page := catalog.indexed_rows(tenant, collection, after=after, limit=PAGE):
        rows.extend(page)
        after = page[-1]["id"]
    return rows


def _recompute(settings: Settings, rows: list[dict], progress: Progress) -> dict[str, tuple]:
    """media id -> (vector, labels), computed by a Ray Data actor pool."""
    import json

    import ray

    cfg = settings.pipelines
    items = [{"id": r["id"], "normalized_key": r["normalized_key"]} for r in rows]
    dataset = ray.data.from_items(items).map_batches(
        EmbedNormalized,
        fn_constructor_args=(settings.model_dump(mode="json"),),
        batch_size=cfg.batch_size,
        compute=ray.data.ActorPoolStrategy(size=cfg.actors),
        num_cpus=cfg.num_cpus,
        num_gpus=cfg.num_gpus,
    )
    found: dict[str, tuple] = {}
    for batch in dataset.iter_batches(batch_size=cfg.batch_size, batch_format="numpy"):
        for media_id, data, labels in zip(
            batch["id"], batch["embedding"], batch["labels"], strict=True
        ):
            found[str(media_id)] = (bytes_to_vector(bytes(data)), json.loads(labels))
        progress(10 + 70 * len(found) / max(1, len(rows)), f"embedded {len(found)}/{len(rows)}")
    return found


def reindex(
    settings: Settings,
    tenant: str,
    collection: str,
    *,
    recompute: bool = False,
    progress: Progress = lambda percent, message: None,
) -> dict:
    from busque.serve.runtime import Runtime

    check_collection(collection)
    started = time.perf_counter()
    settings.ensure_secrets()
    runtime = Runtime(settings)
    catalog, objects = runtime.catalog, runtime.objects
    # Everything up to this change is in the snapshot; a Matcher replays what comes after
    # (an item added meanwhile may be in both: adding is idempotent).
    last_seq = catalog.last_change(tenant, collection)
    rows = _rows(catalog, tenant, collection)
    progress(10, f"{len(rows)} media to index")
    model = None
    if recompute and rows:
        from busque.serve.embedder import build_embedder

        describe = build_embedder(settings).describe()
        model, version = describe["model"], describe["version"]
        fresh = _recompute(settings, rows, progress)
        updated = catalog.set_embeddings(
            [(media_id, vector, labels) for media_id, (vector, labels) in fresh.items()],
            model,
            version,
        )
        for row in rows:
            if row["id"] in fresh:
                row["embedding"] = np.asarray(fresh[row["id"]][0], dtype="<f4").tobytes()
        logger.info("reindex %s/%s: %d embeddings recomputed", tenant, collection, updated)
    rows = [r for r in rows if r["embedding"] is not None]
    dim = len(bytes_to_vector(rows[0]["embedding"])) if rows else _dim(settings)
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


def _dim(settings: Settings) -> int:
    from busque.serve.embedder import build_embedder

    return build_embedder(settings).describe()["dim"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.reindex",
        description="Rebuild a collection's index into a new snapshot that serving Matchers "
        "swap in. Settings come from BUSQUE_* variables (the same as the service's).",
    )
    parser.add_argument("--tenant", required=True, help="tenant id (see `busque keys list`)")
    parser.add_argument("--collection", required=True, type=collection_arg, help="collection name")
    parser.add_argument(
        "--recompute",
        action="store_true",
        help="recompute every embedding with the configured embedder (a new or updated "
        "model) instead of using the stored ones",
    )
    args = parser.parse_args(argv)
    import ray

    settings = Settings()
    if not ray.is_initialized():
        from busque.cli import start_ray

        start_ray(settings)
    result = reindex(
        settings,
        args.tenant,
        args.collection,
        recompute=args.recompute,
        progress=lambda percent, message: print(f"[{percent:5.1f}%] {message}", flush=True),
    )
    print(result)


if __name__ == "__main__":
    main()
