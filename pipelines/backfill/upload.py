"""The backfill's upload: one file per new sha256 through the upload stage, each finished batch
committed as it comes."""

from __future__ import annotations

import base64
import json

import numpy as np
import ray
from tqdm import tqdm

from busque.media.catalog import bytes_to_vector
from busque.media.phash import hex_to_int64
from pipelines import pending
from pipelines.backfill.commit import write_batch
from pipelines.backfill.context import Run
from pipelines.backfill.report import count
from pipelines.backfill.stages import StoreAndEmbed


def store_new(
    run: Run, new: dict[str, list[dict]], failures: list[dict]
) -> tuple[int, dict[str, np.ndarray]]:
    """Upload, catalog and embed one file per new sha256; returns how many were stored and
    their embeddings by path (none with embeddings off)."""
    settings, tenant, library, by_path = run.runtime.settings, run.tenant, run.library, run.by_path
    embeddings, progress = run.embeddings, run.progress

    vectors: dict[str, np.ndarray] = {}
    if not new:
        return 0, vectors
    cfg = settings.pipelines
    reps = [members[0] for members in new.values()]
    model = (
        run.runtime.new_embedder().describe() if embeddings else {"model": None, "version": None}
    )
    dataset = ray.data.from_items(
        [
            {
                "path": r["path"],
                "sha256": r["sha256"],
                "format": r["format"],
                "kind": r["kind"],
                "width": r["width"] or 0,
            }
            for r in reps
        ]
    ).map_batches(
        StoreAndEmbed,
        fn_constructor_args=(
            run.runtime,
            tenant,
            run.spec,
            embeddings,
            run.faces,
            run.real,
        ),
        batch_size=cfg.batch_size,
        compute=ray.data.ActorPoolStrategy(size=cfg.actors),
        num_cpus=cfg.num_cpus,
        num_gpus=cfg.num_gpus,
        **run.readers,
    )
    first = {r["sha256"]: r for r in reps}
    face_store, face_index = run.runtime.faces, run.runtime.face_index
    done = 0
    bar = tqdm(
        total=sum(r["size"] for r in reps),
        unit="B",
        unit_scale=True,
        desc="upload+embed",
        disable=not progress,
        smoothing=0.1,
    )
    journals: set[str] = set()
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        journals.update(str(key) for key in batch["journal"])
        items = []
        for media_id, keys, error, vector, labels, sha, found in zip(
            batch["media_id"],
            batch["keys"],
            batch["error"],
            batch["embedding"],
            batch["labels"],
            batch["sha256"],
            batch["faces"],
            strict=True,
        ):
            row = first[str(sha)]
            bar.update(row["size"])
            if error:
                failures.extend(
                    {"path": m["path"], "error": "invalid_image", "message": str(error)}
                    for m in new[str(sha)]
                )
                continue
            metadata = {
                "source_path": row["path"],
                "library": library,
                "kind": row["kind"],
                "captured_at": row.get("captured_at"),
                "camera": row.get("camera"),
            }
            if row["kind"] == "video":
                metadata |= {k: row[k] for k in ("duration_s", "fps", "codec")}
                metadata["keyframe_phashes"] = json.loads(row["keyframes"])
            vector = bytes_to_vector(bytes(vector)) if len(vector) else None
            if vector is not None:
                vectors[row["path"]] = vector
            faces = json.loads(str(found))
            for face in faces or []:
                face["thumbnail"] = base64.b64decode(face["thumbnail"])
            items.append(
                {
                    "media_id": str(media_id),
                    "sha256": str(sha),
                    "phash": hex_to_int64(row["phash"]),
                    "phash_variants": bytes.fromhex(row["phash_variants"])
                    if row.get("phash_variants")
                    else None,
                    "width": row["width"],
                    "height": row["height"],
                    "format": row["format"],
                    "size": row["size"],
                    "metadata": metadata,
                    "keys": json.loads(str(keys)),
                    "embedding": vector,
                    "labels": json.loads(str(labels)),
                    "faces": faces,  # None: not analysed
                    "files": [by_path[m["path"]] for m in new[str(sha)]],
                }
            )
        write_batch(run, model, face_store, face_index, items)
        done += len(items)
        count(bar, "media", done)
        run.on_progress("upload", done, len(reps))
    bar.close()
    pending.finish(run.runtime.objects, journals)  # every batch is catalogued
    return done, vectors
