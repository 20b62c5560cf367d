"""Backfill benchmark: the Ray Data backfill vs scripts doing the same job, with the gain from
doing less work, the gain from parallelism and busque's own kept apart.

On a generated library (default 200 JPEGs: 10% 12 MP 4000x3000, 90% 1 MP 1152x864, quality
90, made from scikit-image's photos with varied crops, rotations, flips, colour gains and sensor
noise so the pHashes differ; 20% of the files are byte copies in other folders), for embeddings
on, off, and on + faces (when the backfill has faces and dlib's weights are here; on a share of
the library), four methods:
- reference (the original script): one process, file by file: read + hashlib.sha256,
  imagehash.phash(Image.open), EXIF date and camera, a full Pillow decode (EXIF transpose, RGB),
  a 2048 px JPEG and a 256 px WebP (LANCZOS), the Embedder's model class (and the
  FaceAnalyzer's) one image a call on the normalised image, the original (once per sha256),
  renditions and face thumbnails written to a folder, a row per file in SQLite; sha256
  duplicates skip decode, models and writes. Stages are timed.
- same-work reference, 1 process and multiprocessing.Pool(2): the work busque does, as a script
  would do it with Pillow and imagehash: imagehash on a draft-decoded image, an upright RGB
  JPEG within 2048 px kept as its own normalised rendition and decoded at reduced scale, a
  12 MP JPEG decoded at 1/2 scale, the models on batches of busque's batch size; its renditions
  are checked byte for byte against busque's.
- busque: `pipelines.backfill.backfill` into a fresh home per run (local object store, SQLite),
  and at the end a second run over the same, now synced, library. Its split (scan + inspect +
  dedupe / upload + embed / the driver's catalog writes) is timed by wrapping its functions in
  this process, not by changing them.
Every case (kind x method) runs once a round, >= 5 rounds, the order turning each round; CPU-s
per file (the reference's process and its reaped Pool workers; busque's driver and Ray
processes) and wall seconds are medians with intervals, gains paired per round. Floors: busque
>= 2x the original reference (embeddings on, the whole interval) on 2 cores; the second run
>= 20x faster than the first. Writes bench/results/backfill.json and backfill.md. The Ray
workers import the code the driver does (run it from the repository root).

    python bench/backfill.py [--images 200] [--repeats 5] [--big-share 0.1] [--library DIR]
                             [--actors 2] [--batch-size 16] [--num-cpus 0.5] [--no-faces]
        # about 8 minutes on 2 cores (estimated from the 2000-file run's per-file times)
    python bench/backfill.py --quick    # 8 files, embeddings off, 2 rounds; writes nothing
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import math
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from functools import partial
from multiprocessing import Pool
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness

PHOTOS = [
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "camera",
    "horse",
    "moon",
    "coins",
    "hubble_deep_field",
    "immunohistochemistry",
    "clock",
    "retina",
]
BIG, SMALL = (4000, 3000), (1152, 864)
NOISE_SIGMA = 6  # sensor-like noise: 12 MP files of ~2.5 MB, 1 MP of ~250 KB (phone-like)
FLOOR_SPEEDUP, FLOOR_RERUN = 2.0, 20.0
STAGES = ["read_sha256", "imagehash", "exif", "decode", "renditions", "model", "faces", "writes"]
# case -> (embeddings, faces)
CASES = {"on": (True, False), "off": (False, False), "faces": (True, True)}


# ---------------------------------------------------------------- the library


def plan_library(images: int, big_share: float, dup_share: float, seed: int) -> list[dict]:
    """One spec per file: the unique ones (a photo + a transform + a size), then byte copies
    of some of them in backup folders, as many big ones among the copies as among the rest."""
    rng = random.Random(seed)
    dups = round(images * dup_share)
    unique = images - dups
    big_unique = set(rng.sample(range(unique), round(unique * big_share)))
    specs = []
    for i in range(unique):
        specs.append(
            {
                "path": f"{2010 + i % 12}/album{i % 40:02d}/IMG_{i:05d}.jpg",
                "photo": PHOTOS[i % len(PHOTOS)],
                # half nearly upright (faces stay detectable), half tilted up to 25 degrees
                "angle": rng.uniform(-4, 4) if rng.random() < 0.5 else rng.uniform(-25, 25),
                "crop": [rng.uniform(0, 0.25), rng.uniform(0, 0.25), rng.uniform(0.6, 0.95)],
                "flip": rng.random() < 0.5,
                "gains": [rng.uniform(0.75, 1.25) for _ in range(3)],
                "size": list(BIG if i in big_unique else SMALL),
                "noise_at": [rng.randrange(64), rng.randrange(64)],
                "seed": i,
            }
        )
    bigs = sorted(big_unique)
    smalls = [i for i in range(unique) if i not in big_unique]
    n_big = round(dups * big_share) if bigs else 0
    sources = rng.choices(bigs, k=n_big) + rng.choices(smalls, k=dups - n_big)
    for j, source in enumerate(sources):
        specs.append({"path": f"backup/{j % 7}/copy_{j:05d}.jpg", "copy_of": specs[source]["path"]})
    return specs


_CACHE: dict = {}


def _sources():
    if not _CACHE:
        from PIL import Image

        _CACHE.update(harness.photos(PHOTOS))
        noise = np.random.default_rng(0).normal(128, NOISE_SIGMA, (BIG[1] + 64, BIG[0] + 64, 3))
        _CACHE["noise"] = Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8))
    return _CACHE


def make_image(args: tuple[str, dict]) -> int:
    """Write one unique JPEG (with an EXIF date and camera); returns its size in bytes."""
    from PIL import Image, ImageChops

    root, spec = args
    cache = _sources()
    img = cache[spec["photo"]]
    img = img.rotate(spec["angle"], resample=Image.Resampling.BILINEAR, expand=True)
    x, y, side = spec["crop"]
    w, h = img.size
    box = (int(x * w), int(y * h), int(x * w + side * w * 0.75), int(y * h + side * h * 0.75))
    img = img.crop((box[0], box[1], min(box[2], w), min(box[3], h)))
    if spec["flip"]:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    arr = np.asarray(img, dtype=np.float32) * np.asarray(spec["gains"], dtype=np.float32)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    size = tuple(spec["size"])
    img = img.resize(size, Image.Resampling.BICUBIC)
    nx, ny = spec["noise_at"]
    img = ImageChops.add(img, cache["noise"].crop((nx, ny, nx + size[0], ny + size[1])), 1, -128)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "BenchCam", f"Model {spec['seed'] % 5}"
    day = spec["seed"] % 28 + 1
    exif.get_ifd(0x8769)[0x9003] = f"{2010 + spec['seed'] % 12}:03:{day:02d} 12:00:00"
    path = Path(root) / spec["path"]
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "JPEG", quality=90, exif=exif.tobytes())
    return path.stat().st_size


def generate(root: Path, specs: list[dict], processes: int) -> float:
    started = time.perf_counter()
    uniques = [(str(root), s) for s in specs if "copy_of" not in s]
    with Pool(processes) as pool:
        for _ in pool.imap_unordered(make_image, uniques, chunksize=8):
            pass
    for spec in specs:
        if "copy_of" in spec:
            target = root / spec["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / spec["copy_of"], target)
    return time.perf_counter() - started


def describe_library(root: Path) -> dict:
    from PIL import Image

    from busque.media.library import scan

    files = [f for f in scan(root) if f.kind == "image"]
    shas: dict[str, list[str]] = {}
    big = 0
    for f in files:
        data = (root / f.path).read_bytes()
        shas.setdefault(hashlib.sha256(data).hexdigest(), []).append(f.path)
        with Image.open(io.BytesIO(data)) as im:
            big += im.size == BIG
    total = sum(f.size for f in files)
    return {
        "files": len(files),
        "unique": len(shas),
        "duplicates": len(files) - len(shas),
        "big_12mp": big,
        "bytes": total,
        "mb": round(total / 1e6, 1),
        "groups": sorted(shas.values()),
    }


def subset(root: Path, lib: dict, target: Path, share: float) -> None:
    """Every 1/share-th sha256 group of the library, with all its copies (hard links)."""
    groups = lib["groups"]
    step = len(groups) / max(1, round(len(groups) * share))
    picked = {int(i * step) for i in range(round(len(groups) * share))}
    for i in sorted(picked):
        for path in groups[i]:
            (target / path).parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(root / path, target / path)
            except OSError:  # another file system
                shutil.copy2(root / path, target / path)


# ---------------------------------------------------------------- the reference


def reference(root: Path, out: Path, settings, embeddings: bool, faces: bool) -> dict:
    """The sequential script: every file in turn, every stage timed."""
    import imagehash
    from PIL import Image, ImageOps

    from busque.media.library import scan

    started = time.perf_counter()
    stages = dict.fromkeys(STAGES, 0.0)
    model = face_model = None
    if embeddings:
        from busque.runtime import Runtime

        model = Runtime(settings).new_embedder()
        model.load()
    if faces:
        from busque.runtime import Runtime

        face_model = Runtime(settings).new_face_analyzer()
        face_model.load()
    load_s = time.perf_counter() - started
    out.mkdir(parents=True)
    db = sqlite3.connect(out / "reference.db")
    db.execute(
        "CREATE TABLE files (path TEXT PRIMARY KEY, sha256 TEXT, phash TEXT, width INT, "
        "height INT, format TEXT, bytes INT, captured_at TEXT, camera TEXT, media_id TEXT, "
        "normalized TEXT, thumbnail TEXT, embedding BLOB, labels TEXT)"
    )
    db.execute("CREATE TABLE faces (media_id TEXT, box TEXT, score REAL, embedding BLOB)")
    seen: dict[str, str] = {}
    found_faces = 0
    files = [f for f in scan(root) if f.kind == "image"]
    for n, f in enumerate(files):
        path = root / f.path
        t0 = time.perf_counter()
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        t1 = time.perf_counter()
        with Image.open(path) as im:
            phash = str(imagehash.phash(im))
            fmt, (width, height) = im.format, im.size
        t2 = time.perf_counter()
        with Image.open(io.BytesIO(data)) as im:
            exif = im.getexif()
            taken = exif.get_ifd(0x8769).get(0x9003)
            camera = " ".join(str(exif.get(t, "")) for t in (0x010F, 0x0110)).strip() or None
        t3 = time.perf_counter()
        stages["read_sha256"] += t1 - t0
        stages["imagehash"] += t2 - t1
        stages["exif"] += t3 - t2
        row = [f.path, sha, phash, width, height, fmt, len(data), taken, camera]
        if sha in seen:  # stored already: a row, no decode, no model, no writes
            db.execute(
                "INSERT INTO files VALUES (?,?,?,?,?,?,?,?,?,?,NULL,NULL,NULL,NULL)",
                row + [seen[sha]],
            )
            stages["writes"] += time.perf_counter() - t3
            continue
        media_id = f"ref{n:06d}"
        seen[sha] = media_id
        with Image.open(io.BytesIO(data)) as im:
            image = ImageOps.exif_transpose(im).convert("RGB")
        t4 = time.perf_counter()
        normalized = image
        if max(image.size) > 2048:
            normalized = image.copy()
            normalized.thumbnail((2048, 2048), Image.Resampling.LANCZOS)
        norm_jpeg = io.BytesIO()
        normalized.save(norm_jpeg, "JPEG", quality=90)
        thumb = normalized.copy()
        thumb.thumbnail((256, 256), Image.Resampling.LANCZOS)
        thumb_webp = io.BytesIO()
        thumb.save(thumb_webp, "WEBP", quality=80)
        t5 = time.perf_counter()
        vector, labels = None, None
        if model is not None:
            vectors, tops = model.analyze([normalized], 5)
            vector, labels = vectors[0].astype("<f4").tobytes(), json.dumps(tops[0])
        t6 = time.perf_counter()
        detected = face_model.analyze([normalized])[0] if face_model is not None else []
        t7 = time.perf_counter()
        original = out / "originals" / sha[:2] / f"{sha}.jpg"
        original.parent.mkdir(parents=True, exist_ok=True)
        original.write_bytes(data)
        keys = [f"normalized/{media_id}.jpg", f"thumbs/{media_id}.webp"]
        blobs = [norm_jpeg.getvalue(), thumb_webp.getvalue()]
        for i, face in enumerate(detected):
            keys.append(f"faces/{media_id}-{i}.jpg")
            blobs.append(face.thumbnail)
            db.execute(
                "INSERT INTO faces VALUES (?,?,?,?)",
                (media_id, json.dumps(list(face.box)), face.score, face.embedding.tobytes()),
            )
        found_faces += len(detected)
        for key, blob in zip(keys, blobs, strict=True):
            (out / key).parent.mkdir(parents=True, exist_ok=True)
            (out / key).write_bytes(blob)
        db.execute(
            "INSERT INTO files VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            row + [media_id, *keys[:2], vector, labels],
        )
        t8 = time.perf_counter()
        stages["decode"] += t4 - t3
        stages["renditions"] += t5 - t4
        stages["model"] += t6 - t5
        stages["faces"] += t7 - t6
        stages["writes"] += t8 - t7
    t = time.perf_counter()
    db.commit()
    db.close()
    stages["writes"] += time.perf_counter() - t
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "files": len(files),
        "bytes": sum(f.size for f in files),
        "unique": len(seen),
        "faces_found": found_faces,
        "model_load_s": load_s,
        "stages_s": stages,
    }


# ---------------------------------------------------------------- the same-work reference

# What busque's decode does, done with Pillow by a script (busque.media.normalize.prepare and
# busque.media.render, restated): the long side of the normalised rendition, the share of it a
# reduced JPEG decode may keep as it is, the thumbnail's, and imagehash's draft size.
NORMALIZED_SIDE, DRAFT_SLACK, THUMB_SIDE, PHASH_DRAFT = 2048, 0.9, 256, 128
_W: dict = {}  # a worker's models and options (the process's own, or a Pool worker's)


def same_work_init(settings_json: str, embeddings: bool, faces: bool, threads: int | None):
    """Load the models once per process (a Pool's initializer; the 1-process run calls it too).
    threads: torch's intra-op threads (Pool workers 1, so 2 workers use 2 cores; None: torch's
    default)."""
    from busque.config import Settings
    from busque.runtime import Runtime

    if threads:
        import torch

        torch.set_num_threads(threads)
    settings = Settings.model_validate_json(settings_json)
    runtime = Runtime(settings)
    embedder = runtime.new_embedder()
    _W.clear()
    _W["model_side"] = embedder.source_side
    _W["model"] = embedder if embeddings else None
    _W["face_model"] = runtime.new_face_analyzer() if faces else None
    for model in (_W["model"], _W["face_model"]):
        if model is not None:
            model.load()
    # What the decode keeps for the models (busque.media.render.analysis_side).
    side = max(_W["model_side"], settings.faces.detect_side if faces else 0)
    _W["analysis_side"] = side if embeddings or faces else None


def same_work_inspect(path: str) -> dict:
    """sha256, imagehash.phash with draft decoding (imagehash on `im.draft("L", (128, 128))`,
    busque's own draft size), size, format, EXIF date and camera."""
    import imagehash
    from PIL import Image

    data = Path(path).read_bytes()
    with Image.open(io.BytesIO(data)) as im:
        fmt, (width, height) = im.format, im.size
        exif = im.getexif()
        taken = exif.get_ifd(0x8769).get(0x9003)
        camera = " ".join(str(exif.get(t, "")) for t in (0x010F, 0x0110)).strip() or None
        if im.format == "JPEG":
            im.draft("L", (PHASH_DRAFT, PHASH_DRAFT))
        phash = str(imagehash.phash(im))
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "phash": phash,
        "format": fmt,
        "width": width,
        "height": height,
        "bytes": len(data),
        "captured_at": taken,
        "camera": camera,
    }


def same_work_decode(data: bytes):
    """-> (upright RGB image, normalised JPEG bytes): busque's decision, with Pillow. An upright
    RGB JPEG within 2048 px is its own normalised rendition, decoded at the smallest libjpeg
    scale keeping what the thumbnail and the models need; a bigger JPEG decodes at the scale
    keeping 90% of 2048 px and is re-encoded (fitted to 2048 px if still larger)."""
    from PIL import Image, ImageOps

    im = Image.open(io.BytesIO(data))
    upright = im.getexif().get(0x0112, 1) == 1
    as_is = im.format == "JPEG" and im.mode == "RGB" and max(im.size) <= NORMALIZED_SIDE and upright
    if as_is:
        side = max(THUMB_SIDE, _W["analysis_side"] or 0)
    else:
        side = math.ceil(NORMALIZED_SIDE * DRAFT_SLACK) if max(im.size) > NORMALIZED_SIDE else None
    if side and im.format == "JPEG" and side < max(im.size):
        scale = side / max(im.size)
        im.draft("RGB", (math.ceil(im.width * scale), math.ceil(im.height * scale)))
    image = ImageOps.exif_transpose(im).convert("RGB")
    if as_is:
        return image, data
    if max(image.size) > NORMALIZED_SIDE:
        image.thumbnail((NORMALIZED_SIDE, NORMALIZED_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return image, out.getvalue()


def same_work_store(chunk: list[tuple[str, str, str, str]]) -> list[dict]:
    """One batch of new images (root, path, sha256, media_id): the original, the renditions and
    face thumbnails written to the output folder, the embeddings in one model call (busque's
    batch); -> the catalog rows for the parent to write."""
    from PIL import Image

    rows, pixels = [], []
    for out, path, sha, media_id in chunk:
        out = Path(out)
        data = Path(path).read_bytes()
        image, normalized = same_work_decode(data)
        thumb = image.copy()
        thumb.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
        thumb_webp = io.BytesIO()
        thumb.save(thumb_webp, "WEBP", quality=80)
        detected = _W["face_model"].analyze([image])[0] if _W["face_model"] else []
        keys = [f"normalized/{media_id}.jpg", f"thumbs/{media_id}.webp"]
        blobs = [normalized, thumb_webp.getvalue()]
        faces = []
        for i, face in enumerate(detected):
            keys.append(f"faces/{media_id}-{i}.jpg")
            blobs.append(face.thumbnail)
            faces.append((json.dumps(list(face.box)), face.score, face.embedding.tobytes()))
        original = out / "originals" / sha[:2] / f"{sha}.jpg"
        original.parent.mkdir(parents=True, exist_ok=True)
        original.write_bytes(data)
        for key, blob in zip(keys, blobs, strict=True):
            (out / key).parent.mkdir(parents=True, exist_ok=True)
            (out / key).write_bytes(blob)
        if _W["model"] is not None:
            factor = max(image.size) // _W["model_side"]
            pixels.append(image.reduce(factor) if factor >= 2 else image)
        rows.append({"media_id": media_id, "keys": keys[:2], "faces": faces})
    if pixels:
        vectors, tops = _W["model"].analyze(pixels, 5)
        for row, vector, top in zip(rows, vectors, tops, strict=True):
            row["embedding"], row["labels"] = vector.astype("<f4").tobytes(), json.dumps(top)
    return rows


def same_work(
    root: Path, out: Path, settings, embeddings: bool, faces: bool, processes: int, batch: int
) -> dict:
    """The reference doing busque's work the way a script would: inspect every file, keep the
    first path of each sha256, then batches of new images (decode, renditions, models, writes);
    the catalog in SQLite, written by this process. processes=1: all in this process (torch's
    default threads); else a multiprocessing.Pool of that many workers, one torch thread each,
    the models loaded once per worker."""
    from busque.media.library import scan

    started = time.perf_counter()
    files = sorted(str(root / f.path) for f in scan(root) if f.kind == "image")
    init = (settings.model_dump_json(), embeddings, faces, 1 if processes > 1 else None)
    pool = Pool(processes, same_work_init, init) if processes > 1 else None
    try:
        if pool is None:
            same_work_init(*init)
            inspected = list(map(same_work_inspect, files))
        else:
            inspected = pool.map(same_work_inspect, files, chunksize=8)
        out.mkdir(parents=True)
        firsts: dict[str, str] = {}
        for path, row in zip(files, inspected, strict=True):
            firsts.setdefault(row["sha256"], path)
        media = {sha: f"ref{n:06d}" for n, sha in enumerate(firsts)}
        todo = [(str(out), path, sha, media[sha]) for sha, path in firsts.items()]
        chunks = [todo[i : i + batch] for i in range(0, len(todo), batch)]
        db = sqlite3.connect(out / "reference.db")
        db.execute(
            "CREATE TABLE files (path TEXT PRIMARY KEY, sha256 TEXT, phash TEXT, width INT, "
            "height INT, format TEXT, bytes INT, captured_at TEXT, camera TEXT, media_id TEXT)"
        )
        db.execute(
            "CREATE TABLE media (media_id TEXT PRIMARY KEY, normalized TEXT, thumbnail TEXT, "
            "embedding BLOB, labels TEXT)"
        )
        db.execute("CREATE TABLE faces (media_id TEXT, box TEXT, score REAL, embedding BLOB)")
        db.executemany(
            "INSERT INTO files VALUES (?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    str(Path(p).relative_to(root)),
                    *(r[k] for k in ("sha256", "phash", "width", "height", "format", "bytes")),
                    r["captured_at"],
                    r["camera"],
                    media[r["sha256"]],
                )
                for p, r in zip(files, inspected, strict=True)
            ],
        )
        stored = found_faces = 0
        results = (
            map(same_work_store, chunks) if pool is None else pool.imap(same_work_store, chunks)
        )
        for rows in results:  # each batch committed as it comes, as busque's driver does
            for row in rows:
                db.execute(
                    "INSERT INTO media VALUES (?,?,?,?,?)",
                    (row["media_id"], *row["keys"], row.get("embedding"), row.get("labels")),
                )
                db.executemany(
                    "INSERT INTO faces VALUES (?,?,?,?)",
                    [(row["media_id"], *f) for f in row["faces"]],
                )
                found_faces += len(row["faces"])
            db.commit()
            stored += len(rows)
        db.close()
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return {
        "seconds": time.perf_counter() - started,
        "files": len(files),
        "unique": stored,
        "faces_found": found_faces,
    }


def renditions_digest(folders: list[Path]) -> str:
    """One sha256 over the sorted sha256s of every file under these folders: the same
    renditions, whatever they are named."""
    digests = sorted(
        hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in folders
        for p in folder.rglob("*")
        if p.is_file()
    )
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()[:16] + f" ({len(digests)} files)"


# ---------------------------------------------------------------- busque


class Timers:
    """Wraps the pipeline's upload stage and the driver's catalog writes (in this process) to
    split a run's time, without changing the pipeline."""

    def __init__(self):
        import pipelines.backfill.run as run
        import pipelines.backfill.upload as upload

        self.totals: dict[str, float] = {}
        self.saved = []
        patches = [
            (run, "store_new", "upload_embed"),
            (upload, "write_batch", "catalog_writes"),
        ]
        for owner, name, bucket in patches:
            original = getattr(owner, name)
            self.saved.append((owner, name, original))
            setattr(owner, name, self._timed(original, bucket))

    def _timed(self, fn, bucket):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.totals[bucket] = self.totals.get(bucket, 0.0) + time.perf_counter() - started

        return timed

    def restore(self) -> None:
        for owner, name, original in self.saved:
            setattr(owner, name, original)


def make_settings(home: Path, args, faces: bool = False):
    from busque.config import Settings
    from busque.db.migrate import upgrade
    from busque.runtime import Runtime

    settings = Settings(
        home=home,
        faces={"enabled": faces},
        pipelines={
            "actors": args.actors,
            "batch_size": args.batch_size,
            "num_cpus": args.num_cpus,
        },
    ).ensure_secrets()
    upgrade(settings.database.url)
    tenant = Runtime(settings).keys.ensure_tenant("bench")
    return settings, tenant


def faces_support() -> str | None:
    """None when the backfill can analyse faces here; else why not."""
    from pipelines.backfill import backfill

    if "faces" not in inspect.signature(backfill).parameters:
        return "not in the backfill yet"
    from busque.models.faces import unavailable_reason

    reason = unavailable_reason("dlib")
    return f"face model unavailable: {reason}" if reason else None


def busque_run(settings, tenant: str, root: Path, embeddings: bool, faces: bool, timers) -> dict:
    from pipelines.backfill import backfill

    options = {"embeddings": embeddings, "progress": False}
    if "faces" in inspect.signature(backfill).parameters:
        options["faces"] = faces
    timers.totals = {}
    started = time.perf_counter()
    from busque.runtime import Runtime

    report = backfill(Runtime(settings), tenant, root, collection="bench", **options)
    seconds = time.perf_counter() - started
    upload = timers.totals.get("upload_embed", 0.0)
    return {
        "seconds": seconds,
        "files": report["files_seen"],
        "skipped_unchanged": report["skipped_unchanged"],
        "inspected": report["inspected"],
        "uploaded": report.get("uploaded", 0),
        "already_stored": report["already_stored"],
        "exact_duplicate_groups": len(report["exact_duplicate_groups"]),
        "near_duplicate_groups": len(report["near_duplicate_groups"]),
        "failed": report["failed"],
        "split_s": {
            "scan_inspect_dedupe": seconds - upload,
            "upload_embed": upload,
            "of_which_driver_catalog_writes": timers.totals.get("catalog_writes", 0.0),
        },
    }


# ---------------------------------------------------------------- CPU accounting


class CpuMeter:
    """CPU time over a span: this process and its descendants (the reference, or the driver and
    Ray's processes) vs the whole machine (/proc/stat), so that other work on a shared machine
    shows as `other_cores` (average cores busy outside this benchmark). The tree is sampled
    every `every_s` (raylet ignores SIGCHLD, so a Ray worker's time vanishes when it exits: the
    last sample keeps it). Linux + psutil; without them the result is empty."""

    def __init__(self, every_s: float = 0.5):
        import threading

        self.every_s = every_s
        self.first: dict = {}
        self.last: dict = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.started, self.busy = time.perf_counter(), self._busy()
        self.first = self._sample()
        self.last = dict(self.first)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.last |= self._sample()
        self.seconds = time.perf_counter() - self.started
        self.busy = self._busy() - self.busy

    def _run(self) -> None:
        while not self.stop.wait(self.every_s):
            self.last |= self._sample()

    def result(self) -> dict:
        if self.busy < 0 or not self.first:
            return {}
        mine = sum(v - self.first.get(k, 0.0) for k, v in self.last.items())
        return {
            "own_cores": round(mine / self.seconds, 2),
            "other_cores": round(max(0.0, self.busy - mine) / self.seconds, 2),
        }

    @staticmethod
    def _sample() -> dict:
        """(pid, start time) -> CPU seconds so far (own + reaped children), for this process
        and every descendant."""
        try:
            import psutil
        except ImportError:
            return {}
        me = psutil.Process()
        found = {}
        for proc in [me, *me.children(recursive=True)]:
            try:
                t = proc.cpu_times()
                key = (proc.pid, proc.create_time())
            except psutil.Error:
                continue
            found[key] = t.user + t.system + t.children_user + t.children_system
        return found

    @staticmethod
    def _busy() -> float:
        try:
            fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        except OSError:
            return -1.0
        user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[:7])
        return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def wait_quiet(limit_s: float, threshold: float = 0.25, sample_s: float = 3.0) -> dict:
    """Wait (at most limit_s) until other processes use under `threshold` cores over a sample."""
    waited = 0.0
    while True:
        with CpuMeter() as meter:
            time.sleep(sample_s)
        other = meter.result().get("other_cores", 0.0)
        if other < threshold or waited >= limit_s:
            return {"waited_s": round(waited, 1), "other_cores_before": other}
        waited += sample_s


# ---------------------------------------------------------------- main


def code_version() -> dict:
    source = b"".join(
        path.read_bytes() for path in sorted((harness.ROOT / "pipelines" / "backfill").glob("*.py"))
    )
    return {
        "commit": harness.commit(),
        "pipeline_changed_since_commit": harness.uncommitted("pipelines"),
        "pipelines_backfill_py_sha256": hashlib.sha256(source).hexdigest()[:16],
    }


def own_cpu() -> float:
    """CPU seconds of this process and its reaped children (a Pool's workers, once joined)."""
    import resource

    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def measured(fn, tree: bool) -> tuple[dict, float, float, float]:
    """Run fn() -> (its result, wall s, CPU s, other cores). CPU: this process and its reaped
    children (the references), or (tree=True, busque) this process and every descendant
    sampled (the Ray processes, which are never reaped while Ray runs); other cores: the
    machine's busy time less that, over the wall time."""
    cpu0 = own_cpu()
    with CpuMeter() as meter:
        result = fn()
    mine = sum(v - meter.first.get(k, 0.0) for k, v in meter.last.items()) if tree else None
    if not tree or not meter.first:
        mine = own_cpu() - cpu0
    other = max(0.0, meter.busy - mine) / meter.seconds if meter.busy >= 0 else 0.0
    return result, meter.seconds, mine, other


# method -> label; the order of the tables
METHODS = {
    "reference": "reference, 1 process (the original script)",
    "same_work": "same-work reference, 1 process",
    "same_work_pool": "same-work reference, multiprocessing.Pool(2)",
    "busque": "busque (Ray Data)",
}
# gain -> (the slower, the faster, what it measures)
GAINS = {
    "less_work": (
        "reference",
        "same_work",
        "doing less work (same-work vs the original, 1 process each)",
    ),
    "parallelism": ("same_work", "same_work_pool", "parallelism (Pool(2) vs 1 process, same work)"),
    "busque_vs_pool": ("same_work_pool", "busque", "busque vs the same-work Pool(2)"),
    "busque_vs_reference": ("reference", "busque", "busque vs the original reference (all three)"),
}


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--images", type=int, default=200, help="files in the library")
    parser.add_argument(
        "--big-share", type=float, default=0.1, help="share of 12 MP (4000x3000) files"
    )
    parser.add_argument("--dup-share", type=float, default=0.2, help="share of exact byte copies")
    parser.add_argument(
        "--library",
        type=Path,
        help="generate into this folder and keep it; reused as it is when it holds JPEGs "
        "(default: a temporary folder)",
    )
    parser.add_argument("--seed", type=int, default=0, help="the library's random seed")
    parser.add_argument("--actors", type=int, default=2, help="pipelines.actors (model actors)")
    parser.add_argument(
        "--batch-size", type=int, default=16, help="pipelines.batch_size (images per batch)"
    )
    parser.add_argument(
        "--num-cpus", type=float, default=0.5, help="pipelines.num_cpus (per model actor)"
    )
    parser.add_argument(
        "--no-faces",
        action="store_true",
        help="skip the embeddings + faces case (it runs when the backfill has faces)",
    )
    parser.add_argument(
        "--faces-share",
        type=float,
        default=0.4,
        help="the faces case runs on this share of the library (its sha256 groups, copies "
        "included; hard links), to keep a run short",
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="interleaved rounds of every case (>= 5)"
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=60,
        metavar="S",
        help="before the rounds, wait up to S seconds for other processes to use < 0.25 "
        "cores (a shared machine); each case reports the cores the others used",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="8 files (1 of 12 MP), embeddings off only, 2 rounds: a smoke test whose "
        "figures mean nothing; writes nothing",
    )
    args = parser.parse_args()
    if args.quick:
        args.images, args.no_faces, args.repeats, args.wait_quiet = 8, True, 2, 0
    elif args.repeats < 5:
        parser.error("--repeats: at least 5 rounds")

    import imagehash
    import PIL
    import ray
    import torch

    faces_missing = faces_support()
    kinds = dict(CASES)
    main = "off" if args.quick else "on"  # the case the second run repeats
    if args.quick:
        kinds = {"off": CASES["off"]}
    if args.no_faces or faces_missing:
        kinds.pop("faces", None)
    results: dict = {
        "machine": harness.machine(
            pillow=PIL.__version__,
            imagehash=imagehash.__version__,
            torch=torch.__version__,
            torch_threads_reference=torch.get_num_threads(),
            ray=ray.__version__,
        ),
        "code": code_version(),
        "pipelines": {
            "actors": args.actors,
            "batch_size": args.batch_size,
            "num_cpus": args.num_cpus,
            "ray_logical_cpus": 4,
        },
        "repeats": args.repeats,
        "faces": faces_missing or ("skipped" if args.no_faces or args.quick else "benchmarked"),
    }
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        tmp = Path(tmp)
        root = args.library or tmp / "library"
        if root.exists() and any(root.rglob("*.jpg")):
            print(f"reusing the library in {root}", flush=True)
            results["generation"] = {"reused": str(root)}
        else:
            specs = plan_library(args.images, args.big_share, args.dup_share, args.seed)
            if args.quick:  # one 12 MP file, the rest 1 MP
                specs = plan_library(args.images, 1 / 6, args.dup_share, args.seed)
            print(f"generating {len(specs)} images in {root} ...", flush=True)
            seconds = generate(root, specs, processes=2)
            results["generation"] = {"seconds": round(seconds, 1), "processes": 2}
        lib = describe_library(root)  # reads every file: the cases start from the page cache
        libraries = {kind: (root, lib) for kind in kinds}
        if "faces" in kinds and args.faces_share < 1:
            subset(root, lib, tmp / "faces-library", args.faces_share)
            libraries["faces"] = (tmp / "faces-library", describe_library(tmp / "faces-library"))
        results["library"] = {k: v for k, v in lib.items() if k != "groups"}
        if "faces" in kinds:
            faces_lib = libraries["faces"][1]
            results["faces_library"] = {k: v for k, v in faces_lib.items() if k != "groups"}
            results["faces_library"]["share"] = min(1.0, args.faces_share)
        print(json.dumps(results["generation"] | results["library"]), flush=True)

        harness.start_ray()
        timers = Timers()
        try:
            samples, extra, checks = rounds(args, kinds, libraries, tmp, timers, main)
            # The second run: busque again over the last round's synced home (embeddings on).
            settings, tenant = extra["last_home"]
            emb, faces = kinds[main]
            second = {"wall_s": [], "cpu_s": [], "other_cores": []}
            for _ in range(args.repeats):
                case, wall, cpu, other = measured(
                    lambda: busque_run(settings, tenant, root, emb, faces, timers), tree=True
                )
                for key, value in zip(second, (wall, cpu, other), strict=True):
                    second[key].append(value)
            extra["second_run"] = case
        finally:
            timers.restore()
            ray.shutdown()

    results["cases"] = summarise(samples, extra, kinds, libraries)
    results["second_run"] = {
        "seconds": harness.scaled(harness.median_interval(second["wall_s"]), 1, 4),
        "skipped_unchanged": extra["second_run"]["skipped_unchanged"],
        "files": lib["files"],
    }
    first = results["cases"][main]["methods"]["busque"]["seconds"]
    again = results["second_run"]["seconds"]
    # Conservative: the first run's fastest round against the second run's slowest.
    results["second_run_speedup"] = {
        "median": round(first["median"] / again["median"], 1),
        "low": round(first["low"] / again["high"], 1),
    }
    results["floors"] = {
        "busque_vs_reference_embeddings_on": FLOOR_SPEEDUP,
        "second_run": FLOOR_RERUN,
    }
    results["floors_met"] = {"second_run": results["second_run_speedup"]["low"] >= FLOOR_RERUN}
    if "on" in kinds:
        ratio_on = results["cases"]["on"]["gains"]["busque_vs_reference"]["wall"]
        results["floors_met"]["busque_vs_reference_embeddings_on"] = harness.meets(
            ratio_on, FLOOR_SPEEDUP
        )
    results["renditions_digests"] = extra["digests"]
    results["checks"] = checks | {
        "second_run_skipped_every_file": extra["second_run"]["skipped_unchanged"] == lib["files"],
    }
    results["pass"] = all(results["floors_met"].values()) and all(results["checks"].values())
    harness.publish("backfill", results, markdown(results), args)


def rounds(
    args, kinds: dict, libraries: dict, tmp: Path, timers, main: str
) -> tuple[dict, dict, dict]:
    """Every case (kind x method) once a round, `args.repeats` rounds, the order turning each
    round (harness.interleaved's, with CPU measured across processes). Each run writes into a
    fresh folder or busque home, made before and removed after its timing."""
    from tqdm import tqdm

    homes = {
        kind: [make_settings(tmp / f"home-{kind}-{r}", args, faces) for r in range(args.repeats)]
        for kind, (_, faces) in kinds.items()
    }
    names = [(kind, method) for kind in kinds for method in METHODS]
    samples = {name: {"wall_s": [], "cpu_s": [], "other_cores": []} for name in names}
    extra: dict = {name: [] for name in names}
    digests: dict = {}
    quiet = wait_quiet(args.wait_quiet) if args.wait_quiet else {}
    extra["quiet_before"] = quiet
    for r in tqdm(range(args.repeats), desc="rounds", leave=False):
        for k in range(len(names)):
            kind, method = names[(r + k) % len(names)]
            emb, faces = kinds[kind]
            folder = libraries[kind][0]
            settings, tenant = homes[kind][r]
            out = tmp / f"out-{kind}-{method}-{r}"
            print(f"round {r + 1}: {kind} {method} ...", flush=True)
            if method == "busque":
                fn = partial(busque_run, settings, tenant, folder, emb, faces, timers)
            elif method == "reference":
                fn = partial(reference, folder, out, settings, emb, faces)
            else:
                processes = 2 if method == "same_work_pool" else 1
                fn = partial(
                    same_work, folder, out, settings, emb, faces, processes, args.batch_size
                )
            case, wall, cpu, other = measured(fn, tree=method == "busque")
            for key, value in zip(samples[(kind, method)], (wall, cpu, other), strict=True):
                samples[(kind, method)][key].append(value)
            extra[(kind, method)].append(case)
            if r == 0 and method in ("same_work", "busque"):
                where = (
                    [
                        settings.storage.local_dir / "data" / tenant / d
                        for d in ("normalized", "thumbs")
                    ]
                    if method == "busque"
                    else [out / "normalized", out / "thumbs"]
                )
                digests[(kind, method)] = renditions_digest(where)
            shutil.rmtree(out, ignore_errors=True)
            print(f"  {wall:.2f} s, {cpu:.1f} CPU-s", flush=True)
    extra["last_home"] = homes[main][-1]
    checks = {
        "busque_uploaded_every_unique_image": all(
            c["uploaded"] == libraries[kind][1]["unique"]
            for kind in kinds
            for c in extra[(kind, "busque")]
        ),
        "references_stored_every_unique_image": all(
            c["unique"] == libraries[kind][1]["unique"]
            for kind in kinds
            for method in METHODS
            if method != "busque"
            for c in extra[(kind, method)]
        ),
        "same_work_renditions_equal_busque": all(
            digests[(kind, "same_work")] == digests[(kind, "busque")] for kind in kinds
        ),
        "no_failures": all(c.get("failed", 0) == 0 for k in names for c in extra[k]),
    }
    extra["digests"] = {f"{kind} {method}": d for (kind, method), d in digests.items()}
    return samples, extra, checks


def summarise(samples: dict, extra: dict, kinds: dict, libraries: dict) -> dict:
    """Per kind: each method's CPU-s per file, wall seconds, files/s and cores (medians with
    intervals), the gains paired per round, the reference's stages and busque's split."""
    out: dict = {}
    for kind in kinds:
        lib = libraries[kind][1]
        files = lib["files"]
        entry: dict = {
            "files": files,
            "bytes": lib["bytes"],
            "unique": lib["unique"],
            "methods": {},
        }
        for method in METHODS:
            s = samples[(kind, method)]
            wall = harness.median_interval(s["wall_s"])
            entry["methods"][method] = {
                "cpu_s_per_file": harness.scaled(harness.median_interval(s["cpu_s"]), 1 / files, 5),
                "seconds": harness.scaled(wall, 1, 3),
                "files_per_s": round(files / wall["median"], 2),
                "mb_per_s": round(lib["bytes"] / 1e6 / wall["median"], 2),
                "cores_busy": round(
                    statistics.median(c / w for c, w in zip(s["cpu_s"], s["wall_s"], strict=True)),
                    2,
                ),
                "other_cores": round(max(s["other_cores"]), 2),
                "samples": {k: [round(v, 4) for v in vs] for k, vs in s.items()},
            }
        entry["gains"] = {}
        for gain, (slow, fast, _) in GAINS.items():
            a, b = samples[(kind, slow)], samples[(kind, fast)]
            wall = harness.scaled(harness.ratio_interval(a["wall_s"], b["wall_s"]), 1)
            cpu = harness.scaled(harness.ratio_interval(a["cpu_s"], b["cpu_s"]), 1)
            entry["gains"][gain] = {"cpu": cpu, "wall": wall, "verdict": harness.verdict(wall)}
        refs = extra[(kind, "reference")]
        entry["reference_stages_s"] = {
            stage: round(statistics.median(c["stages_s"][stage] for c in refs), 2)
            for stage in STAGES
        } | {"model_load": round(statistics.median(c["model_load_s"] for c in refs), 2)}
        runs = extra[(kind, "busque")]
        entry["busque_split_s"] = {
            part: round(statistics.median(c["split_s"][part] for c in runs), 2)
            for part in runs[0]["split_s"]
        }
        last = runs[-1]
        entry["busque_groups"] = {
            "exact": last["exact_duplicate_groups"],
            "near": last["near_duplicate_groups"],
        }
        entry["faces_found"] = {
            m: extra[(kind, m)][-1]["faces_found"] for m in METHODS if m != "busque"
        }
        out[kind] = entry
    return out


# ---------------------------------------------------------------- the report

LABELS = {"on": "embeddings on", "off": "embeddings off", "faces": "embeddings + faces"}


def markdown(results: dict) -> str:
    m, lib, p, c = results["machine"], results["library"], results["pipelines"], results["cases"]
    gen, code = results["generation"], results["code"]
    made = (
        f"generated in {gen['seconds']} s by a pool of {gen['processes']} processes"
        if "seconds" in gen
        else f"reused from {gen['reused']}"
    )
    level = next(iter(c.values()))["methods"]["busque"]["seconds"]["level"]
    lines = [
        f"# Backfill benchmark ({m['cores']} cores, {m['cpu']})",
        "",
        f"Library: {lib['files']} JPEGs, {lib['mb']} MB: {lib['big_12mp']} of 12 MP (4000x3000) "
        f"and {lib['files'] - lib['big_12mp']} of 1 MP (1152x864), quality 90, from "
        "scikit-image's photos (crops, rotations, flips, colour gains, sensor noise); "
        f"{lib['duplicates']} are byte copies in backup folders ({lib['unique']} unique); {made}. "
        "Every case reads the files from the page cache.",
        "",
        "Four ways to do the backfill, each a case, interleaved: "
        f"{results['repeats']} rounds, every case once a round, the order turning each round; "
        f"medians with a {level:.1%} distribution-free interval, gains paired per round. "
        "CPU-s per file is the work (least disturbed by other load), wall time what a user "
        "waits.",
        "",
        "- **reference, 1 process**: the original script: file by file, read + hashlib.sha256, "
        "imagehash.phash(Image.open) (full decode), EXIF, a full Pillow decode (EXIF transpose, "
        "RGB), a 2048 px JPEG q90 and a 256 px WebP (LANCZOS) re-encoded from it, the Embedder's "
        f"model class one image a call (torch's default {m['torch_threads_reference']} threads) "
        "and, in the faces case, the FaceAnalyzer's on the normalised image; the original once "
        "per sha256, renditions and face thumbnails to a folder, a row per file in SQLite.",
        "- **same-work reference**: busque's work done by a script with Pillow and imagehash: "
        "imagehash.phash after `im.draft('L', (128, 128))`; an upright RGB JPEG within 2048 px "
        "is its own normalised rendition (no re-encode) and decodes at the smallest libjpeg "
        "scale keeping what the thumbnail and models need; a 12 MP JPEG decodes at 1/2 scale and "
        "is re-encoded at 2000x1500; the embedder's input box-reduced from that; the model "
        f"classes on batches of {p['batch_size']} new images (busque's batch); catalog rows in "
        "SQLite from the parent process. 1 process (torch's default threads), or a "
        "`multiprocessing.Pool(2)` (one torch thread per worker, models loaded once per worker). "
        "Its renditions are checked byte for byte against busque's.",
        f"- **busque**: `pipelines.backfill.backfill` into a fresh home (local object store, "
        f"SQLite) each round, on a local Ray (`start_ray()`, 4 logical CPUs) started before the "
        f"rounds; actors={p['actors']}, batch_size={p['batch_size']}, num_cpus={p['num_cpus']}; "
        f"code {code['commit']}"
        f"{' + uncommitted pipeline changes' if code['pipeline_changed_since_commit'] else ''} "
        f"(pipelines/backfill/*.py {code['pipelines_backfill_py_sha256']}). Its CPU is the "
        "driver's and every Ray process's, idle ones included; Ray stays up through the "
        "rounds, so the scripts' \"others' cores\" include its idle processes.",
        "",
        f"Python {m['python']}, Pillow {m['pillow']}, imagehash {m['imagehash']}, torch "
        f"{m['torch']}, Ray {m['ray']}.",
        "",
    ]
    if "faces_library" in results:
        fl = results["faces_library"]
        lines += [
            f"The faces case runs on {fl['share']:.0%} of the library (its sha256 groups, copies "
            f"included, as hard links): {fl['files']} files, {fl['mb']} MB, {fl['unique']} "
            f"unique, {fl['big_12mp']} of 12 MP; its figures are over those files.",
            "",
        ]
    else:
        lines += [f"Faces: {results['faces']} (no faces case).", ""]
    for kind, entry in c.items():
        lines += [
            f"## {LABELS[kind]} ({entry['files']} files)",
            "",
            "| method | CPU-s per file [interval] | wall s [interval] | files/s | MB/s "
            "| cores busy | others' cores (max) |",
            "|---|---|---|---:|---:|---:|---:|",
        ]
        for method, label in METHODS.items():
            r = entry["methods"][method]
            lines.append(
                f"| {label} | {harness.show(r['cpu_s_per_file'], 4)} | "
                f"{harness.show(r['seconds'])} | {r['files_per_s']} | {r['mb_per_s']} | "
                f"{r['cores_busy']} | {r['other_cores']} |"
            )
        lines += [
            "",
            "| gain | by CPU-s per file | by wall time | so the faster side is |",
            "|---|---|---|---|",
        ]
        for gain, (_, _, what) in GAINS.items():
            g = entry["gains"][gain]
            lines.append(
                f"| {what} | {harness.show(g['cpu'])}x | {harness.show(g['wall'])}x | "
                f"**{g['verdict']}** |"
            )
        lines.append("")
    lines += reading(results)
    lines += [
        f"- Every busque run starts its Ray Data pipeline afresh (inspect tasks, {p['actors']} "
        "actors importing busque and loading the models), a Pool(2) run forks 2 workers that "
        "load the models: on a library this small that start-up weighs more than on a large "
        "one (`--images 2000` for a longer run).",
    ]
    lines += [
        "",
        "Where the original reference's time goes (seconds, median round):",
        "",
        "| reference stage | " + " | ".join(LABELS[k] for k in c) + " |",
        "|---|" + "---|" * len(c),
    ]
    for stage in ["model_load", *STAGES]:
        lines.append(
            f"| {stage} | " + " | ".join(str(c[k]["reference_stages_s"][stage]) for k in c) + " |"
        )
    lines += [
        "",
        "| busque part (median round) | " + " | ".join(LABELS[k] for k in c) + " |",
        "|---|" + "---|" * len(c),
    ]
    for part in next(iter(c.values()))["busque_split_s"]:
        cells = [str(c[k]["busque_split_s"][part]) for k in c]
        lines.append(f"| {part.replace('_', ' ')} | {' | '.join(cells)} |")
    s = results["second_run"]
    sp = results["second_run_speedup"]
    fm = results["floors_met"]
    floor = "not run (no embeddings-on case)"
    if "on" in c:
        on = c["on"]["gains"]["busque_vs_reference"]["wall"]
        met = fm["busque_vs_reference_embeddings_on"]
        floor = f"{harness.show(on)}x, {'met' if met else 'NOT met'}"
    lines += [
        "",
        f"Second run (the synced library again, {results['repeats']} times): "
        f"{harness.show(s['seconds'], 3)} s, {s['skipped_unchanged']} of {s['files']} files "
        f"skipped by path, size and mtime; {sp['median']}x faster than the first run (at "
        f"least {sp['low']}x: its fastest first run against the slowest second).",
        "",
        f"Floors: busque >= {FLOOR_SPEEDUP:.0f}x the original reference's wall time with "
        f"embeddings on, the whole interval: {floor}; the second run >= "
        f"{FLOOR_RERUN:.0f}x faster than the first: {'met' if fm['second_run'] else 'NOT met'}. "
        f"Overall: {'PASS' if results['pass'] else 'FAIL'}.",
        "",
        "Checks: "
        + ", ".join(
            f"{k.replace('_', ' ')}: {'yes' if v else 'NO'}" for k, v in results["checks"].items()
        )
        + " (renditions: "
        + "; ".join(f"{k} {v}" for k, v in results["renditions_digests"].items())
        + ").",
    ]
    busy = [
        f"{LABELS[k]} {METHODS[mth]} {r['other_cores']}"
        for k, e in c.items()
        for mth, r in e["methods"].items()
        if r["other_cores"] >= 0.25
    ]
    lines += [
        "",
        "Other work on the machine during the cases: "
        + (
            "under 0.25 cores in every run."
            if not busy
            else "; ".join(busy) + " cores at most: those figures are disturbed."
        ),
    ]
    return "\n".join(lines) + "\n"


def reading(results: dict) -> list[str]:
    """The verdicts in words, computed from the figures."""
    c = results["cases"]
    lines = ["## Reading", ""]
    for kind, entry in c.items():
        g = entry["gains"]
        cpu = {mth: r["cpu_s_per_file"]["median"] * 1000 for mth, r in entry["methods"].items()}
        vs = g["busque_vs_pool"]
        side = {"ahead": "ahead of", "behind": "behind", "level": "level with"}[vs["verdict"]]
        work = (
            "less CPU per file"
            if vs["cpu"]["low"] > 1
            else "more CPU per file"
            if vs["cpu"]["high"] < 1
            else "about the same CPU per file"
        )
        lines.append(
            f"- {LABELS[kind]}: CPU-ms per file: original reference {cpu['reference']:.0f}, "
            f"same work {cpu['same_work']:.0f}, Pool(2) {cpu['same_work_pool']:.0f}, busque "
            f"{cpu['busque']:.0f}. Doing less work gains {g['less_work']['cpu']['median']:.2f}x "
            f"in CPU and {g['less_work']['wall']['median']:.2f}x in wall time; parallelism "
            f"{g['parallelism']['wall']['median']:.2f}x in wall time (CPU "
            f"{g['parallelism']['cpu']['median']:.2f}x); busque is **{side}** the Pool(2) "
            f"script ({harness.show(vs['wall'])}x in wall time) with {work} "
            f"({harness.show(vs['cpu'])}x). Against the original reference busque is "
            f"{g['busque_vs_reference']['wall']['median']:.2f}x in wall time, roughly the "
            f"product of the three: less work {g['less_work']['wall']['median']:.2f}x, "
            f"parallelism {g['parallelism']['wall']['median']:.2f}x, busque over Pool(2) "
            f"{vs['wall']['median']:.2f}x (medians of paired ratios do not multiply exactly)."
        )
    return lines


if __name__ == "__main__":
    main()
