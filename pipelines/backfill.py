"""Backfill a legacy photo library (DupMedia's) into busque: dedupe, upload, catalog, embed.

    busque backfill /photos --tenant family [--collection photos] [--dry-run]
    python -m pipelines.backfill /photos --tenant family        (e.g. under `ray job submit`)

1. Scan the folder; files whose path, size and mtime were synced before are skipped unread.
2. Inspect the rest in parallel (Ray Data tasks): sha256 while reading, and for images the pHash
   (the ingest's fast hash), size, format, EXIF capture date and camera. Unreadable, corrupt
   and unsupported files are listed in the report; the run goes on.
3. Dedupe: exact duplicates by sha256 are stored once, every path kept (library_files); a file
   whose bytes the catalog already has costs no model work and no upload. Near duplicates are
   reported as groups, never deleted: by pHash (within `index.duplicate_radius` bits), by
   embedding (cosine >= `index.near_duplicate_cosine`, among the images this run embeds) and,
   for videos, by keyframe hashes (pipelines/dedupe.py).
4. Unless --dry-run: each new image is decoded once (at the size its renditions and the models
   need) in a Ray Data actor pool holding the Embedder's and FaceAnalyzer's model classes; its
   original (content-addressed), normalised JPEG and thumbnail go to the object store, its
   embedding and faces to the catalog, whose change log makes it searchable in the running
   service. A video's poster frame is its thumbnail and embedding; its faces come from
   `faces.video_frames` frames sampled over it, each person once. Each batch is committed as it
   finishes: a killed run resumes where it stopped, with nothing duplicated and nothing missing,
   and a later run removes the renditions and thumbnails it wrote but never catalogued
   (pipelines/pending.py, once `pipelines.orphan_grace_s` old).
The report (JSON, and a summary table) gives counts, groups, failures and the bytes dedupe saved.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from busque.config import Settings
from busque.media.catalog import check_collection
from busque.media.library import LibraryFile, LibraryStore, inspect_file, path_text
from busque.media.sources import open_source
from pipelines import dedupe, pending
from pipelines.reindex import collection_arg

logger = logging.getLogger("busque.pipelines")


# Every inspected row has every field (Ray Data blocks need one schema); keyframes travel as JSON.
FIELDS = (
    "sha256",
    "format",
    "width",
    "height",
    "phash",
    "duration_s",
    "fps",
    "codec",
    "captured_at",
    "camera",
    "error",
    "message",
)


_sources: dict[str, object] = {}


def _source(spec: str, settings: dict):
    """The library's source, opened once per worker process."""
    if spec not in _sources:
        _sources[spec] = open_source(spec, Settings.model_validate(settings))
    return _sources[spec]


def _inspect_batch(
    batch: dict, spec: str, settings: dict, max_pixels: int, real: dict[str, str]
) -> dict:
    out: dict[str, list] = {key: list(values) for key, values in batch.items()}
    for key in (*FIELDS, "keyframes"):
        out[key] = []
    for path in batch["path"]:
        with _source(spec, settings).local(real.get(str(path), str(path))) as local:
            info = inspect_file(local, max_pixels=max_pixels)
        for key in FIELDS:
            out[key].append(info.get(key))
        out["keyframes"].append(json.dumps(info.get("keyframes") or []))
    return out


def _parallelism() -> int:
    """How many inspect tasks run at once: the cores of a single machine (the local Ray declares
    more logical CPUs than it has, see ENVIRONMENT.md), or a cluster's CPUs."""
    import os

    import ray

    if len([n for n in ray.nodes() if n.get("Alive")]) <= 1:
        return os.cpu_count() or 1
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


class StoreAndEmbed:
    """A map_batches callable: new images -> renditions and original in the object store, and
    (with embeddings on) the vector and labels from the Embedder's model class."""

    def __init__(
        self,
        settings: dict,
        tenant: str,
        spec: str,
        embeddings: bool,
        faces: bool = False,
        real: dict[str, str] | None = None,
    ):
        from busque.serve.embedder import build_embedder
        from busque.storage import open_object_store

        self.settings = Settings.model_validate(settings)
        self.tenant = tenant
        self.source = open_source(spec, self.settings)
        self.real = real or {}  # text path -> the file's real path (see _text_paths)
        self.objects = open_object_store(self.settings.storage, self.settings.serve.public_url)
        self.model = build_embedder(self.settings) if embeddings else None
        if self.model is not None:
            self.model.load()
        self.face_model = None
        if faces:
            from busque.serve.faces import build_face_analyzer

            self.face_model = build_face_analyzer(self.settings)
            self.face_model.load()
        # the pixels the models need decoded (None: only the thumbnail's)
        self.analysis_side = (
            self.settings.faces.detect_side
            if faces
            else (self.model.source_side if self.model is not None else None)
        )

    def _prepare(self, local: Path, kind: str, sha256: str, fmt: str, keys: dict):
        """Store the original; (the decoded image, or a video's poster frame, and renditions)."""
        from busque.media.normalize import CONTENT_TYPES, prepare

        if kind == "video":
            return self._video(local, sha256, keys)
        data = local.read_bytes()
        media = self.settings.media
        prepared = prepare(
            data,
            max_pixels=media.max_pixels,
            max_side=media.normalized_side,
            thumb_side=media.thumbnail_side,
            analysis_side=self.analysis_side,
            sha256=sha256,
        )
        if self.objects.stat(keys["original"]) is None:
            self.objects.put(keys["original"], data, CONTENT_TYPES.get(fmt))
        return prepared

    def _video(self, path: Path, sha256: str, keys: dict):
        """Store the video as it is (streamed from disk); its poster frame stands for it."""
        from busque.media.decode import DecodedImage
        from busque.media.normalize import renditions
        from busque.media.video import poster_frame
        from busque.storage import tenant_key

        ext = Path(path).suffix.lower()
        keys["original"] = tenant_key(self.tenant, "originals", sha256[:2], f"{sha256}{ext}")
        if self.objects.stat(keys["original"]) is None:
            self.objects.put_file(keys["original"], Path(path), f"video/{ext.lstrip('.')}")
        media = self.settings.media
        frame = poster_frame(path)
        frame.thumbnail((media.normalized_side,) * 2)
        decoded = DecodedImage(frame, "jpeg", frame.width, frame.height, sha256, 0)
        return decoded, renditions(decoded, media.normalized_side, media.thumbnail_side)

    def _faces(self, decoded, video: Path | None, width: int) -> str:
        """Faces of the image (of a few frames sampled over a video), boxes in the original's
        pixels; JSON, thumbnails base64 (Ray Data columns are flat)."""
        if self.face_model is None:
            return "null"
        import base64

        if video is None:
            (faces,) = self.face_model.analyze([decoded.image])
            found = [(None, decoded.image.width, face) for face in faces]
        else:
            from busque.faces.video import video_faces
            from busque.media.video import sample_frames

            cfg = self.settings.faces
            frames = sample_frames(video, cfg.video_frames, cfg.detect_side)
            frame_width = frames[0][1].width
            found = [
                (t, frame_width, face)
                for t, face in video_faces(
                    frames, self.face_model.analyze, cfg.cluster_max_distance
                )
            ]
        return json.dumps(
            [
                {
                    "box": [round(v * width / seen_width) for v in face.box],
                    "score": face.score,
                    "embedding": [float(x) for x in face.embedding],
                    "thumbnail": base64.b64encode(face.thumbnail).decode(),
                    "frame_s": t,
                }
                for t, seen_width, face in found
            ]
        )

    def _embedding_input(self, image):
        """The embedder's pixels: an image decoded larger for the face detector is box-reduced
        to about the model's source side, as the JPEG decoder would have given it (the same
        embedding with faces on or off, and a cheaper resize in the model)."""
        factor = max(image.size) // self.model.source_side
        return image.reduce(factor) if factor >= 2 else image

    def __call__(self, batch: dict) -> dict:
        from busque.ids import new_id
        from busque.media.normalize import storage_keys

        out: dict[str, list] = defaultdict(list)
        images = []
        media_ids = [new_id("med") for _ in batch["path"]]
        all_keys = [
            storage_keys(self.tenant, media_id, str(sha256), str(fmt))
            for media_id, sha256, fmt in zip(
                media_ids, batch["sha256"], batch["format"], strict=True
            )
        ]
        journal = pending.begin(
            self.objects,
            self.tenant,
            {
                m: [k["normalized"], k["thumbnail"]]
                for m, k in zip(media_ids, all_keys, strict=True)
            },
        )
        rows = zip(
            media_ids,
            all_keys,
            batch["path"],
            batch["sha256"],
            batch["format"],
            batch["kind"],
            batch["width"],
            strict=True,
        )
        for media_id, keys, path, sha256, fmt, kind, width in rows:
            error, faces = "", "[]"
            try:
                with self.source.local(self.real.get(str(path), str(path))) as local:
                    decoded, made = self._prepare(local, kind, sha256, fmt, keys)
                    video = Path(local) if kind == "video" else None
                    faces = self._faces(decoded, video, int(width or decoded.width))
                self.objects.put(keys["normalized"], made.normalized, "image/jpeg")
                self.objects.put(keys["thumbnail"], made.thumbnail, "image/webp")
                images.append(decoded)
            except Exception as exc:  # reported per file; the batch goes on
                error = f"{type(exc).__name__}: {exc}"
                images.append(None)
                for key in (keys["normalized"], keys["thumbnail"]):
                    with contextlib.suppress(Exception):  # else the journal's sweep removes it
                        self.objects.delete(key)  # when the second upload failed
            out["media_id"].append(media_id)
            out["keys"].append(json.dumps(keys))
            out["error"].append(error)
            out["faces"].append(faces)
            out["journal"].append(journal)
        vectors, labels = [b""] * len(images), [[]] * len(images)
        usable = [i for i, image in enumerate(images) if image is not None]
        if self.model is not None and usable:
            pixels = [self._embedding_input(images[i].image) for i in usable]
            found, tops = self.model.analyze(pixels, 5)
            for i, vector, top in zip(usable, found, tops, strict=True):
                vectors[i], labels[i] = vector.astype("<f4").tobytes(), top
        out["embedding"] = vectors
        out["labels"] = [json.dumps(top) for top in labels]
        out["sha256"] = list(batch["sha256"])
        return dict(out)


def _missing_folder(root: str | Path) -> bool:
    """A local library root that is not a folder (an S3 prefix is not checked)."""
    return not str(root).startswith("s3://") and not Path(root).is_dir()


def _text_paths(
    files: list[LibraryFile],
) -> tuple[list[LibraryFile], dict[str, str], list[dict]]:
    """The files under their text paths (path_text: what the catalog, its synced paths and the
    report hold), the real path of each renamed file (to read it by), and a failure for each
    renamed file whose text path another file has."""
    names = {f.path for f in files}
    out, real, clashes = [], {}, []
    for f in files:
        text = path_text(f.path)
        if text == f.path:
            out.append(f)
        elif text in names or text in real:
            message = "its name is not UTF-8 and reads the same as another file's"
            clashes.append({"path": text, "error": "name_clash", "message": message})
        else:
            real[text] = f.path
            out.append(replace(f, path=text))
    return out, real, clashes


def backfill(
    settings: Settings,
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
) -> dict:
    """One pass over the library (see the module docstring); returns the report. Files changed
    less than `settle_s` ago are left for the next pass (they may still be being written)."""
    import ray
    from tqdm import tqdm

    from busque.serve.runtime import Runtime

    collection = check_collection(collection or settings.media.default_collection)
    if _missing_folder(root):
        raise ValueError(f"no such folder: {root}")
    started = time.perf_counter()
    settings.ensure_secrets()
    runtime = Runtime(settings)
    source = open_source(root, settings)
    library = library or collection
    store = LibraryStore(runtime.engine)
    files = source.scan()
    if settle_s:
        fresh_before = time.time() - settle_s
        files = [f for f in files if f.mtime <= fresh_before]
    seen = len(files)
    files, real, clashes = _text_paths(files)
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
        tasks = _parallelism()
        batch = max(1, min(64, len(rows) // (tasks * 8)))
        inspect = ray.data.from_items(
            rows, override_num_blocks=math.ceil(len(rows) / batch)
        ).map_batches(
            _inspect_batch,
            batch_size=batch,
            fn_kwargs={
                "spec": source.name,
                "settings": settings.model_dump(mode="json"),
                "max_pixels": settings.media.max_pixels,
                "real": real,
            },
            num_cpus=0.25,
            concurrency=tasks,
        )
        for row in inspect.iter_rows():
            inspected.append(row)
            bar.update(row["size"])
            _count(bar, "files", len(inspected))
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
    from busque.models.faces import unavailable_reason

    faces = faces and settings.faces.enabled and unavailable_reason(settings.faces.backend) is None
    run = _Run(
        settings,
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
    )
    report["orphans_removed"] = pending.sweep(
        runtime.objects, runtime.catalog, tenant, settings.pipelines.orphan_grace_s
    )
    uploaded, vectors = _store_new(run, new, failures)
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


@dataclass
class _Run:
    """What the upload stage of one backfill shares."""

    settings: Settings
    runtime: object
    store: LibraryStore
    tenant: str
    collection: str
    library: str
    by_path: dict
    spec: str
    embeddings: bool
    faces: bool
    progress: bool
    real: dict[str, str] = field(default_factory=dict)  # see _text_paths


def _store_new(
    run: _Run, new: dict[str, list[dict]], failures: list[dict]
) -> tuple[int, dict[str, np.ndarray]]:
    """Upload, catalog and embed one file per new sha256; returns how many were stored and
    their embeddings by path (none with embeddings off)."""
    import base64

    import ray
    from tqdm import tqdm

    from busque.faces.index import FaceIndex
    from busque.faces.store import FaceStore

    settings, tenant, library, by_path = run.settings, run.tenant, run.library, run.by_path
    embeddings, progress = run.embeddings, run.progress

    from busque.media.catalog import bytes_to_vector
    from busque.media.phash import hex_to_int64
    from busque.serve.embedder import build_embedder

    vectors: dict[str, np.ndarray] = {}
    if not new:
        return 0, vectors
    cfg = settings.pipelines
    reps = [members[0] for members in new.values()]
    model = build_embedder(settings).describe() if embeddings else {"model": None, "version": None}
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
            settings.model_dump(mode="json"),
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
    )
    first = {r["sha256"]: r for r in reps}
    face_store = FaceStore(run.runtime.engine)
    face_index = FaceIndex(face_store)
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
        _write_batch(run, model, face_store, face_index, items)
        done += len(items)
        _count(bar, "media", done)
    bar.close()
    pending.finish(run.runtime.objects, journals)  # every batch is catalogued
    return done, vectors


def _count(bar, name: str, n: int) -> None:
    """Items done and their rate beside a bytes bar's own MB/s and ETA."""
    elapsed = bar.format_dict.get("elapsed") or 0.0
    rate = f"{n / elapsed:.1f}" if elapsed > 0 else "-"
    bar.set_postfix({name: n, f"{name}/s": rate}, refresh=False)


def _write_batch(run: _Run, model: dict, face_store, face_index, items: list[dict]) -> None:
    """One batch into the catalog in one transaction: media rows (indexed and synced), their
    faces, every path as a library file. A killed run leaves the batch whole or absent (then
    redone): no media without its faces, no path pointing nowhere. Face thumbnails go to the
    object store first (journaled, see pipelines/pending.py) and are removed if the
    transaction fails; people are clustered after."""
    from busque.faces.analyze import cluster_rows, delete_objects, name_faces, put_thumbnails

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
        cluster_rows(face_store, face_index, run.settings.faces, run.tenant, face_rows)


def watch(
    settings: Settings,
    tenant: str,
    root: str | Path,
    *,
    interval_s: float = 5.0,
    stop=None,
    on_report=None,
    **options,
) -> None:
    """DupMedia's on-demand trigger: pass over the library every `interval_s` seconds; each pass
    processes only files that appeared or changed (and have not changed for a second), through
    the same steps. Runs until `stop` (a threading.Event) is set or the process is interrupted."""
    import threading

    stop = stop or threading.Event()
    while not stop.is_set():
        report = backfill(settings, tenant, root, settle_s=1.0, **options)
        if report["inspected"] and on_report is not None:
            on_report(report)
        stop.wait(interval_s)


def summary(report: dict) -> str:
    rows = [
        ("files seen", report["files_seen"]),
        ("skipped (unchanged since the last run)", report["skipped_unchanged"]),
        ("inspected", report["inspected"]),
        ("already stored (alias only)", report["already_stored"]),
        ("new unique images", report["unique_new"]),
        ("uploaded", report.get("uploaded", "-")),
        ("leftovers of killed runs removed", report.get("orphans_removed", "-")),
        ("exact duplicate groups", len(report["exact_duplicate_groups"])),
        ("near duplicate groups (pHash)", len(report["near_duplicate_groups"])),
        (
            "near duplicate groups (embedding)",
            "-"
            if report["near_duplicate_embedding_groups"] is None
            else len(report["near_duplicate_embedding_groups"]),
        ),
        ("near duplicate video groups", len(report["near_duplicate_video_groups"])),
        ("bytes saved by dedupe", report["bytes_saved_by_dedupe"]),
        ("failed", report["failed"]),
        ("seconds", report.get("seconds", "-")),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    lines += [
        f"  failed: {f['path']}: {f['error']} ({f['message']})" for f in report["failures"][:20]
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.backfill", description=__doc__.split("\n\n")[0]
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(Settings(), args)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "root", help="the library: a folder (scanned recursively) or s3://bucket/prefix"
    )
    parser.add_argument("--tenant", required=True, help="tenant name or id (ten_...)")
    parser.add_argument(
        "--create-tenant",
        action="store_true",
        help="create the --tenant (a name) if there is none by that name; else it must exist",
    )
    parser.add_argument(
        "--collection",
        type=collection_arg,
        help="collection for the media (default: media.default_collection)",
    )
    parser.add_argument("--library", help="name of this library (default: the collection)")
    parser.add_argument(
        "--dry-run", action="store_true", help="only write the report: counts, groups, bytes saved"
    )
    parser.add_argument(
        "--no-faces", action="store_true", help="do not detect faces (images and video frames)"
    )
    parser.add_argument(
        "--no-embeddings",
        action="store_true",
        help="store and catalog, embed later (reindex --recompute)",
    )
    parser.add_argument("--report", type=Path, help="write the JSON report here")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--watch",
        action="store_true",
        help="keep watching the folder: new or changed files are processed as they appear",
    )
    parser.add_argument(
        "--interval", type=float, default=5.0, help="--watch: seconds between passes"
    )


def run(settings: Settings, args) -> int:
    import sys

    import ray

    from busque.cli import _key_store, start_ray

    if _missing_folder(args.root):
        print(f"no such folder: {args.root}", file=sys.stderr)
        return 1
    keys = _key_store(settings)
    tenant = args.tenant if keys.tenant(args.tenant) else keys.tenant_id(args.tenant)
    if tenant is None and not args.create_tenant:
        print(f"no tenant {args.tenant!r} (--create-tenant creates it)", file=sys.stderr)
        return 1
    if tenant is None:
        try:
            tenant = keys.ensure_tenant(args.tenant)
        except ValueError as exc:  # not a valid tenant name
            print(exc, file=sys.stderr)
            return 1
    if not ray.is_initialized():
        start_ray(settings)
    if args.watch:
        with contextlib.suppress(KeyboardInterrupt):
            watch(
                settings,
                tenant,
                args.root,
                interval_s=args.interval,
                on_report=lambda r: print(summary(r), flush=True),
                collection=args.collection,
                library=args.library,
                embeddings=not args.no_embeddings,
                faces=not args.no_faces,
                progress=not args.quiet,
            )
        return 0
    try:
        report = backfill(
            settings,
            tenant,
            args.root,
            collection=args.collection,
            library=args.library,
            dry_run=args.dry_run,
            embeddings=not args.no_embeddings,
            faces=not args.no_faces,
            progress=not args.quiet,
        )
    except KeyboardInterrupt:
        # committed batches are kept: a rerun skips them
        print("\ninterrupted; rerun to resume", file=sys.stderr)
        return 130
    if args.report:
        args.report.write_text(json.dumps(report, indent=2))
    print(summary(report), file=sys.stderr if args.report is None else sys.stdout)
    if args.report is None:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
