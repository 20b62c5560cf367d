"""One backfill pass over a library, start to end (see the package's docstring)."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import ray
from tqdm import tqdm

from busque.media.catalog import check_collection
from busque.media.library import LibraryStore
from busque.media.sources import open_source
from pipelines import dedupe, pending
from pipelines.backfill.context import Progress, Run
from pipelines.backfill.inspect import inspect_batch, parallelism
from pipelines.backfill.placement import file_readers
from pipelines.backfill.plan import excluded, missing_folder, text_paths
from pipelines.backfill.report import count
from pipelines.backfill.upload import store_new


def backfill(
    runtime,
    tenant: str,
    root: str | Path,
    *,
    collection: str | None = None,
    library: str | None = None,
    dry_run: bool = False,
    embeddings: bool = True,
    faces: bool = True,
    progress: bool = True,
    settle_s: float = 0.0,
    exclude: Sequence[str] = (),
    on_progress: Progress | None = None,
) -> dict:
    """One pass over the library (see the module docstring); returns the report. Files changed
    less than `settle_s` ago are left for the next pass (they may still be being written);
    paths that `exclude` or `pipelines.backfill_exclude` name are skipped (plan.excluded).
    `on_progress(stage, done, total)` hears of each file inspected and each batch catalogued
    (a job reports it, and may raise there to stop: what was committed stays)."""
    report_progress = on_progress or (lambda stage, done, total: None)
    settings = runtime.settings
    collection = check_collection(collection or settings.media.default_collection)
    if missing_folder(root):
        raise ValueError(f"no such folder: {root}")
    started = time.perf_counter()
    settings.ensure_secrets()
    source = open_source(root, settings)
    readers = file_readers(source)
    library = library or collection
    store = LibraryStore(runtime.engine)
    files = source.scan()
    patterns = [*settings.pipelines.backfill_exclude, *exclude]
    kept = [f for f in files if not excluded(f.path, patterns)]
    skipped_by_pattern, files = len(files) - len(kept), kept
    if settle_s:
        fresh_before = time.time() - settle_s
        files = [f for f in files if f.mtime <= fresh_before]
    seen = len(files)
    files, real, clashes = text_paths(files)
    synced = store.synced(tenant, library)
    unchanged = [f for f in files if synced.get(f.path) == (f.size, f.mtime)]
    media_kinds = ("image", "video")
    todo = [f for f in files if f.kind in media_kinds and synced.get(f.path) != (f.size, f.mtime)]
    unsupported = clashes + [
        {"path": f.path, "error": "unsupported", "message": "not an image or video file"}
        for f in files
        if f.kind not in media_kinds and synced.get(f.path) != (f.size, f.mtime)
    ]
    by_path = {f.path: f for f in todo}

    # 2. inspect, in parallel
    rows = [{"path": f.path, "size": f.size, "kind": f.kind} for f in todo]
    inspected: list[dict] = []
    bar = tqdm(
        total=sum(f.size for f in todo),
        unit="B",
        unit_scale=True,
        desc="inspect",
        disable=not progress,
        smoothing=0.1,
    )
    if rows:
        # A few worker processes reused for small batches: a task per file (or a process per
        # task) costs more than the file's hashing does.
        tasks = parallelism()
        batch = max(1, min(64, len(rows) // (tasks * 8)))
        inspect = ray.data.from_items(
            rows, override_num_blocks=math.ceil(len(rows) / batch)
        ).map_batches(
            inspect_batch,
            batch_size=batch,
            fn_kwargs={
                "spec": source.name,
                "settings": settings.model_dump(mode="json"),
                "max_pixels": settings.media.max_pixels,
                "real": real,
            },
            num_cpus=0.25,
            concurrency=tasks,
            **readers,
        )
        for row in inspect.iter_rows():
            inspected.append(row)
            bar.update(row["size"])
            count(bar, "files", len(inspected))
            report_progress("inspect", len(inspected), len(rows))
    bar.close()
    failures = unsupported + [
        {"path": r["path"], "error": r["error"], "message": r["message"]}
        for r in inspected
        if r.get("error")
    ]
    good = sorted((r for r in inspected if not r.get("error")), key=lambda r: r["path"])

    # 3. dedupe
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in good:
        groups[r["sha256"]].append(r)
    known = store.media_by_sha256(tenant, groups)
    new = {sha: members for sha, members in groups.items() if sha not in known}
    exact_groups = [
        sorted(m["path"] for m in members) for members in groups.values() if len(members) > 1
    ]
    saved_bytes = sum(
        sum(m["size"] for m in members[1:]) + (members[0]["size"] if sha in known else 0)
        for sha, members in groups.items()
    )
    firsts = [members[0] for members in groups.values()]
    near_groups = dedupe.phash_groups(
        [r for r in firsts if r["kind"] == "image"], settings.index.duplicate_radius
    )
    video_groups = dedupe.video_groups([r for r in firsts if r["kind"] == "video"])

    report = {
        "root": source.name,
        "tenant": tenant,
        "library": library,
        "collection": collection,
        "dry_run": dry_run,
        "files_seen": seen,
        "excluded": skipped_by_pattern,
        "skipped_unchanged": len(unchanged),
        "inspected": len(inspected),
        "failed": len(failures),
        "unique_new": len(new),
        "already_stored": sum(len(m) for sha, m in groups.items() if sha in known),
        "exact_duplicate_groups": exact_groups,
        "near_duplicate_groups": near_groups,
        "near_duplicate_embedding_groups": None,  # the upload stage computes the embeddings
        "near_duplicate_video_groups": video_groups,
        "bytes_saved_by_dedupe": saved_bytes,
        "failures": failures,
    }
    if dry_run:
        report["seconds"] = round(time.perf_counter() - started, 2)
        return report

    # Paths whose bytes are stored already: remember them, no model work, no upload.
    store.record(
        tenant,
        library,
        [
            (by_path[m["path"]], sha, known[sha])
            for sha, members in groups.items()
            if sha in known
            for m in members
        ],
    )
    faces = faces and runtime.faces_available()
    run = Run(
        runtime,
        store,
        tenant,
        collection,
        library,
        by_path,
        source.name,
        embeddings,
        faces,
        progress,
        real,
        readers,
        report_progress,
    )
    report["orphans_removed"] = pending.sweep(
        runtime.objects, runtime.catalog, tenant, settings.pipelines.orphan_grace_s
    )
    uploaded, vectors = store_new(run, new, failures)
    if embeddings:
        report["near_duplicate_embedding_groups"] = dedupe.embedding_groups(
            list(vectors), np.array(list(vectors.values())), settings.index.near_duplicate_cosine
        )
    report |= {
        "uploaded": uploaded,
        "failed": len(failures),
        "seconds": round(time.perf_counter() - started, 2),
    }
    return report
