"""A backfill batch into the catalog, whole or not at all."""

from __future__ import annotations

from busque.faces.analyze import cluster_rows, delete_objects, name_faces, put_thumbnails
from pipelines import pending
from pipelines.backfill.context import Run


def write_batch(run: Run, model: dict, face_store, face_index, items: list[dict]) -> None:
    """One batch into the catalog in one transaction: media rows (indexed and synced), their
    faces, every path as a library file. A killed run leaves the batch whole or absent (then
    redone): no media without its faces, no path pointing nowhere. Face thumbnails go to the
    object store first (journaled, see pipelines/pending.py) and are removed if the
    transaction fails; people are clustered after."""
    objects = run.runtime.objects
    written = {item["media_id"]: name_faces(run.tenant, item["faces"] or []) for item in items}
    written = {media_id: keys for media_id, keys in written.items() if keys}
    journal = pending.begin(objects, run.tenant, written) if written else None
    try:
        for item in items:
            if item["faces"]:
                put_thumbnails(objects, item["faces"])
        face_rows = []
        with run.runtime.engine.begin() as conn:
            run.runtime.catalog.add_synced(
                conn,
                run.tenant,
                run.collection,
                items,
                embedding_model=model["model"],
                embedding_version=model["version"],
            )
            for item in items:
                if item["faces"] is not None:
                    rows, _ = face_store.replace_faces(
                        run.tenant, item["media_id"], item["faces"], "dlib-resnet-v1", conn
                    )
                    face_rows += rows
            run.store.record(
                run.tenant,
                run.library,
                [(f, item["sha256"], item["media_id"]) for item in items for f in item["files"]],
                conn,
            )
    except BaseException:
        delete_objects(objects, [key for keys in written.values() for key in keys])
        raise
    finally:
        pending.finish(objects, [journal] if journal else [])
    if face_rows:
        cluster_rows(face_store, face_index, run.runtime.settings.faces, run.tenant, face_rows)
