"""Backfill benchmark: the Ray Data backfill vs a sequential script doing the same work.

On a generated library (default 2,000 JPEGs: 10% 12 MP 4000x3000, 90% 1 MP 1152x864, quality
90, made from scikit-image's photos with varied crops, rotations, flips, colour gains and sensor
noise so the pHashes differ; 20% of the files are byte copies in other folders), per case:
seconds, files/s and MB/s (input bytes / s), for embeddings on, off, and on + faces (when the
backfill has faces and dlib's weights are here):
- reference: one process, file by file: read + hashlib.sha256, imagehash.phash(Image.open),
  EXIF date and camera, Pillow decode (EXIF transpose, RGB), a 2048 px JPEG and a 256 px WebP
  (LANCZOS), the Embedder's model class (and the FaceAnalyzer's) on the normalised image, the
  original (once per sha256), renditions and face thumbnails written to a folder, a row per file
  in SQLite (sqlite3); sha256 duplicates skip decode, models and writes. Stages are timed.
- busque: `pipelines.backfill.backfill` into a fresh home per case (local object store,
  SQLite), then a second run of the embeddings-on case over the same, now synced, library. Its
  split (scan + inspect + dedupe / upload + embed / the driver's catalog writes) is timed by
  wrapping its functions in this process, not by changing them.
Floors: busque >= 2x the reference (embeddings on) on 2 cores; the second run >= 20x faster
than the first. Writes bench/results/backfill.json and backfill.md. The Ray workers import the
code the driver does (run it from the repository root).

    python bench/backfill.py [--images 2000] [--big-share 0.1] [--library DIR]
                             [--actors 2] [--batch-size 16] [--num-cpus 0.5] [--no-faces]
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
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


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--images", type=int, default=2000, help="files in the library")
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
        default=0.5,
        help="the faces case runs on this share of the library (its sha256 groups, copies "
        "included; hard links), to keep a run short",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=60,
        metavar="S",
        help="before each case, wait up to S seconds for other processes to use < 0.25 cores "
        "(a shared machine); each case reports the cores it and the others used",
    )
    args = parser.parse_args()

    import imagehash
    import PIL
    import ray
    import torch

    faces_missing = faces_support()
    kinds = dict(CASES)
    if args.no_faces or faces_missing:
        kinds.pop("faces")
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
        "faces": faces_missing or ("skipped (--no-faces)" if args.no_faces else "benchmarked"),
    }
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        tmp = Path(tmp)
        root = args.library or tmp / "library"
        if root.exists() and any(root.rglob("*.jpg")):
            print(f"reusing the library in {root}", flush=True)
            results["generation"] = {"reused": str(root)}
        else:
            specs = plan_library(args.images, args.big_share, args.dup_share, args.seed)
            print(f"generating {len(specs)} images in {root} ...", flush=True)
            seconds = generate(root, specs, processes=2)
            results["generation"] = {"seconds": round(seconds, 1), "processes": 2}
        lib = describe_library(root)
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

        cases: dict[str, dict] = {}
        for kind, (emb, faces) in kinds.items():
            name = f"reference_{kind}"
            print(f"{name} ...", flush=True)
            settings, _ = make_settings(tmp / f"home-{name}", args, faces)
            quiet = wait_quiet(args.wait_quiet)
            with CpuMeter() as meter:
                cases[name] = reference(libraries[kind][0], tmp / name, settings, emb, faces)
            cases[name] |= {"cpu": meter.result() | quiet}
            print(f"  {cases[name]['seconds']:.1f} s", flush=True)

        harness.start_ray()
        timers = Timers()
        try:
            homes = {
                kind: make_settings(tmp / f"home-{kind}", args, kinds[kind][1]) for kind in kinds
            }
            runs = [(kind, kind) for kind in kinds] + [("second_run", "on")]
            for name, kind in runs:
                print(f"busque_{name} ...", flush=True)
                settings, tenant = homes[kind]
                emb, faces = kinds[kind]
                quiet = wait_quiet(args.wait_quiet)
                with CpuMeter() as meter:
                    case = busque_run(settings, tenant, libraries[kind][0], emb, faces, timers)
                cases[f"busque_{name}"] = case | {"cpu": meter.result() | quiet}
                print(f"  {cases[f'busque_{name}']['seconds']:.2f} s", flush=True)
        finally:
            timers.restore()
            ray.shutdown()

    for name, case in cases.items():
        case_lib = libraries["faces"][1] if name.endswith("_faces") else lib
        files, size = case_lib["files"], case_lib["bytes"]
        case |= {
            "files": files,
            "bytes": size,
            "files_per_s": round(files / case["seconds"], 2),
            "mb_per_s": round(size / 1e6 / case["seconds"], 2),
            "seconds": round(case["seconds"], 2),
        }
        for key in ("stages_s", "split_s"):
            if key in case:
                case[key] = {k: round(v, 2) for k, v in case[key].items()}
        if "model_load_s" in case:
            case["model_load_s"] = round(case["model_load_s"], 2)
    results["cases"] = cases
    ratio = {
        kind: round(cases[f"reference_{kind}"]["seconds"] / cases[f"busque_{kind}"]["seconds"], 2)
        for kind in kinds
    }
    rerun = cases["busque_on"]["seconds"] / cases["busque_second_run"]["seconds"]
    results["speedup_vs_reference"] = ratio
    results["second_run_speedup"] = round(rerun, 1)
    results["floors"] = {
        "busque_vs_reference_embeddings_on": FLOOR_SPEEDUP,
        "second_run": FLOOR_RERUN,
    }
    results["checks"] = {
        "busque_uploaded_every_unique_image": all(
            cases[f"busque_{kind}"]["uploaded"] == libraries[kind][1]["unique"] for kind in kinds
        ),
        "reference_stored_every_unique_image": all(
            cases[f"reference_{kind}"]["unique"] == libraries[kind][1]["unique"] for kind in kinds
        ),
        "second_run_skipped_every_file": cases["busque_second_run"]["skipped_unchanged"]
        == lib["files"],
        "no_failures": all(cases[k].get("failed", 0) == 0 for k in cases),
    }
    results["pass"] = ratio["on"] >= FLOOR_SPEEDUP and rerun >= FLOOR_RERUN
    harness.write_results("backfill", results, markdown(results), write=not args.no_write)


# ---------------------------------------------------------------- the report

LABELS = {"on": "embeddings on", "off": "embeddings off", "faces": "embeddings + faces"}


def markdown(results: dict) -> str:
    m, lib, p, c = results["machine"], results["library"], results["pipelines"], results["cases"]
    gen, code = results["generation"], results["code"]
    kinds = list(results["speedup_vs_reference"])
    made = (
        f"generated in {gen['seconds']} s by a pool of {gen['processes']} processes"
        if "seconds" in gen
        else f"reused from {gen['reused']}"
    )
    lines = [
        f"# Backfill benchmark ({m['cores']} cores, {m['cpu']})",
        "",
        f"Library: {lib['files']} JPEGs, {lib['mb']} MB: {lib['big_12mp']} of 12 MP (4000x3000) "
        f"and {lib['files'] - lib['big_12mp']} of 1 MP (1152x864), quality 90, from "
        "scikit-image's photos (crops, rotations, flips, colour gains, sensor noise); "
        f"{lib['duplicates']} are byte copies in backup folders ({lib['unique']} unique); {made}. "
        "Every case reads the files from the page cache.",
        "",
        "Reference: one process, file by file: read + hashlib.sha256, imagehash.phash(Image.open), "
        "EXIF, Pillow decode (EXIF transpose, RGB), a 2048 px JPEG q90 and a 256 px WebP "
        "(LANCZOS), the Embedder's model class (EfficientNet-Lite0, one image a call, torch's "
        f"default {m['torch_threads_reference']} threads) and, in the faces case, the "
        "FaceAnalyzer's (dlib HOG + ResNet) on the normalised image; the original once per "
        "sha256, the renditions (and face thumbnails) written to a folder, a row per file in "
        "SQLite; copies skip decode, models and writes. busque: `pipelines.backfill.backfill` "
        "into a fresh home (local object store, SQLite) after `start_ray()` (4 logical CPUs); "
        "it does the same work with less decoding (`busque.media.normalize.prepare`): an upright "
        "RGB JPEG within 2048 px is its own normalised rendition, a 12 MP JPEG decodes at 1/2 "
        "scale (a 2000x1500 normalised JPEG), and the embedder's pixels decode at >= 512 px; "
        f"pipelines: actors={p['actors']}, batch_size={p['batch_size']}, "
        f"num_cpus={p['num_cpus']}; code {code['commit']}"
        f"{' + uncommitted pipeline changes' if code['pipeline_changed_since_commit'] else ''} "
        f"(pipelines/backfill/*.py {code['pipelines_backfill_py_sha256']}). Python {m['python']}, "
        f"Pillow {m['pillow']}, imagehash {m['imagehash']}, torch {m['torch']}, Ray {m['ray']}.",
        "",
        "| case | seconds | files/s | MB/s | busque / reference | cores used (own / others) |",
        "|---|---|---|---|---|---|",
    ]
    ratio = results["speedup_vs_reference"]
    for kind in kinds:
        ref, bus = c[f"reference_{kind}"], c[f"busque_{kind}"]
        lines += [
            f"| reference, {LABELS[kind]} | {ref['seconds']} | {ref['files_per_s']} | "
            f"{ref['mb_per_s']} | | {cores_used(ref)} |",
            f"| **busque, {LABELS[kind]}** | {bus['seconds']} | {bus['files_per_s']} | "
            f"{bus['mb_per_s']} | **{ratio[kind]:.2f}x** | {cores_used(bus)} |",
        ]
    second = c["busque_second_run"]
    lines += [
        f"| busque, second run (synced library) | {second['seconds']} | {second['files_per_s']} "
        f"| {second['mb_per_s']} | {results['second_run_speedup']}x faster than its first run "
        f"| {cores_used(second)} |",
        "",
    ]
    if "faces" not in kinds:
        lines += [f"Faces: {results['faces']} (no faces row).", ""]
    else:
        fl = results["faces_library"]
        lines += [
            f"The faces case runs on {fl['share']:.0%} of the library (its sha256 groups, copies "
            f"included, as hard links): {fl['files']} files, {fl['mb']} MB, {fl['unique']} "
            f"unique, {fl['big_12mp']} of 12 MP; its rates are over those files.",
            "",
        ]
    met = ratio["on"] >= FLOOR_SPEEDUP
    rerun_met = results["second_run_speedup"] >= FLOOR_RERUN
    others = ", ".join(f"{LABELS[k]}: {ratio[k]:.2f}x" for k in kinds if k != "on")
    lines += [
        f"Floors: busque >= {FLOOR_SPEEDUP:.0f}x the reference with embeddings on: "
        f"{ratio['on']:.2f}x, {'met' if met else 'MISSED'} ({others}); the second run >= "
        f"{FLOOR_RERUN:.0f}x faster than the first: {results['second_run_speedup']}x, "
        f"{'met' if rerun_met else 'MISSED'}. Overall: {'PASS' if results['pass'] else 'FAIL'}.",
        "",
        "Where the time goes (seconds):",
        "",
        "| reference stage | " + " | ".join(LABELS[k] for k in kinds) + " |",
        "|---|" + "---|" * len(kinds),
        "| model load | "
        + " | ".join(str(c[f"reference_{k}"]["model_load_s"]) for k in kinds)
        + " |",
    ]
    for stage in STAGES:
        if stage == "faces" and "faces" not in kinds:
            continue
        cells = " | ".join(str(c[f"reference_{k}"]["stages_s"][stage]) for k in kinds)
        lines.append(f"| {stage} | {cells} |")
    lines += [
        "",
        "| busque part | " + " | ".join(LABELS[k] for k in kinds) + " | second run |",
        "|---|" + "---|" * (len(kinds) + 1),
    ]
    for part in second["split_s"]:
        cells = [str(c[f"busque_{k}"]["split_s"][part]) for k in [*kinds, "second_run"]]
        lines.append(f"| {part.replace('_', ' ')} | {' | '.join(cells)} |")
    lines += ["", *reading(results), ""]
    bon = c["busque_on"]
    busy = [k for k, v in c.items() if v["cpu"].get("other_cores", 0) >= 0.25]
    lines += [
        "Checks: "
        + ", ".join(
            f"{k.replace('_', ' ')}: {'yes' if v else 'NO'}" for k, v in results["checks"].items()
        )
        + f"; busque found {bon['exact_duplicate_groups']} exact-duplicate groups and "
        f"{bon['near_duplicate_groups']} near-duplicate groups (pHash radius).",
        "",
        "Other work on the machine during the cases: "
        + (
            "none to speak of (under 0.25 cores each)."
            if not busy
            else ", ".join(f"{k} {c[k]['cpu']['other_cores']} cores" for k in busy)
            + ": those figures are disturbed."
        ),
    ]
    return "\n".join(lines) + "\n"


def cores_used(case: dict) -> str:
    cpu = case.get("cpu", {})
    return f"{cpu['own_cores']} / {cpu['other_cores']}" if "own_cores" in cpu else "-"


def reading(results: dict) -> list[str]:
    """A few lines computed from the figures."""
    c, lib = results["cases"], results["library"]
    ratio = results["speedup_vs_reference"]
    on, off = c["reference_on"], c["reference_off"]
    bon, boff = c["busque_on"], c["busque_off"]
    st = on["stages_s"]
    share = {k: v / on["seconds"] for k, v in st.items()}
    top = sorted(share, key=share.get, reverse=True)[:3]
    per_file = {k: st[k] / lib["files"] * 1000 for k in ("read_sha256", "imagehash", "exif")}
    per_unique = {
        k: st[k] / max(1, on["unique"]) * 1000 for k in ("decode", "renditions", "model", "writes")
    }
    ref_inspect = st["read_sha256"] + st["imagehash"] + st["exif"]
    ref_store = on["seconds"] - ref_inspect
    split = bon["split_s"]
    writes = split["of_which_driver_catalog_writes"]
    cores = results["machine"]["cores"] or 1
    lines = [
        "Reading:",
        "- The reference (embeddings on) spends "
        + ", ".join(f"{share[k]:.0%} in {k}" for k in top)
        + "; per file "
        + " / ".join(f"{k} {v:.1f} ms" for k, v in per_file.items())
        + ", per unique image "
        + " / ".join(f"{k} {v:.1f} ms" for k, v in per_unique.items())
        + ".",
        f"- Inspect (sha256 + pHash + EXIF of every file): reference {ref_inspect:.1f} s, busque "
        f"{split['scan_inspect_dedupe']:.1f} s (scan + inspect + dedupe) = "
        f"{ref_inspect / split['scan_inspect_dedupe']:.2f}x. Store + embed (the unique images): "
        f"reference {ref_store:.1f} s, busque {split['upload_embed']:.1f} s = "
        f"{ref_store / split['upload_embed']:.2f}x, of which {writes:.1f} s are the driver's "
        f"catalog writes ({writes / max(1, bon['uploaded']) * 1000:.1f} ms an image, one "
        "transaction per batch).",
        f"- Embeddings cost the reference {on['seconds'] - off['seconds']:.1f} s and busque "
        f"{bon['seconds'] - boff['seconds']:.1f} s.",
    ]
    if "own_cores" in on.get("cpu", {}) and "own_cores" in bon.get("cpu", {}):
        ref_cpu = on["cpu"]["own_cores"] * on["seconds"]
        bus_cpu = bon["cpu"]["own_cores"] * bon["seconds"]
        budget = cores * on["seconds"] / FLOOR_SPEEDUP
        lines.append(
            f"- CPU time, embeddings on: the reference {ref_cpu:.0f} CPU-s "
            f"({on['cpu']['own_cores']} cores busy on average: torch's threads in the model), "
            f"busque {bus_cpu:.0f} CPU-s ({bon['cpu']['own_cores']} of {cores} cores busy). "
            f"{FLOOR_SPEEDUP:.0f}x the reference on {cores} fully busy cores needs at most "
            f"{budget:.0f} CPU-s: busque "
            + (
                f"is {bus_cpu - budget:.0f} CPU-s ({bus_cpu / budget - 1:.0%}) over that."
                if bus_cpu > budget
                else f"stays {budget - bus_cpu:.0f} CPU-s under it."
            )
            + f" Its upload + embed part is about "
            f"{split['upload_embed'] * bon['cpu']['own_cores'] / max(1, bon['uploaded']) * 1000:.0f}"
            f" CPU-ms an image, the reference's decode + renditions + model + writes "
            f"{sum(per_unique.values()):.0f} ms."
        )
    if "faces" in ratio:
        rf, bf = c["reference_faces"], c["busque_faces"]
        lines.append(
            f"- Faces: the reference's face stage takes "
            f"{rf['stages_s']['faces'] / max(1, rf['unique']) * 1000:.0f} ms an image "
            f"({rf['stages_s']['faces'] / rf['seconds']:.0%} of its faces case; "
            f"{rf['faces_found']} faces found); files/s with faces vs without: reference "
            f"{rf['files_per_s']} vs {on['files_per_s']}, busque {bf['files_per_s']} vs "
            f"{bon['files_per_s']}."
        )
    lines.append(
        f"- The second run reads no file: {c['busque_second_run']['skipped_unchanged']} of "
        f"{lib['files']} skipped by path, size and mtime, in {c['busque_second_run']['seconds']} s."
    )
    return lines


if __name__ == "__main__":
    main()
