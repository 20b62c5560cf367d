"""Decodes and object-store reads per ingested photo: what one `POST /v1/ingest` costs in image
decoding and storage I/O, from the request's check to the end of its job (embedding and faces
included), against the plain script a user would write for the same work.

It runs the code each step of the service runs (the API's check, the ingest job with the
Embedder's and the FaceAnalyzer's model work done in this process as their deployments do it),
on a local object store, and counts every image decode (Pillow's ImageFile.load with data left
to decode, with the size it decoded at) and every object-store read. It runs against the code of
the checkout it sits in, so the same file run from an older checkout (copy bench/harness.py
beside it) measures the code before a change (the script knows both shapes of the ingest job:
before and after busque.media.render).

The peer ("script, one full decode"): the photo decoded once, in full, with Pillow
(ImageOps.exif_transpose + convert RGB), then the same outputs from that image: the normalised
JPEG and the WebP thumbnail (Image.thumbnail), the pHash (imagehash.phash), the embedding and
the faces (busque's own model classes, given the full image: each model resizes it itself).
Both run in this process with the models loaded once; busque with its services as its
deployments run them. Cases interleaved (every round ingests each photo once each way, in an
order that turns each round); seconds are medians over rounds with distribution-free
intervals, busque vs script paired per round; decode and read counts are exact (the last
round's). There is no --url: the counts come from patching Pillow and the object store in this
process. Writes bench/results/ingest_io_<label>.json and .md.

    python bench/ingest_io.py                      # full: 4 photos, 7 rounds
    python bench/ingest_io.py --label before       # e.g. from a worktree of an older commit
    python bench/ingest_io.py --quick --no-write   # 1 photo, 5 rounds
"""

from __future__ import annotations

import asyncio
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness


def photos() -> dict[str, bytes]:
    """Real photos as a camera or a phone would send them: a 12 MP JPEG, a 2 MP JPEG (within the
    normalised cap), a portrait with a face, a PNG."""
    from PIL import Image

    def jpeg(image, quality=92):
        out = io.BytesIO()
        image.save(out, "JPEG", quality=quality)
        return out.getvalue()

    astronaut, chelsea, hopper = harness.photos(["astronaut", "chelsea", "grace_hopper"]).values()
    png = io.BytesIO()
    chelsea.save(png, "PNG")
    return {
        "12mp.jpg": jpeg(astronaut.resize((4000, 3000), Image.Resampling.LANCZOS)),
        "2mp.jpg": jpeg(chelsea.resize((1600, 1200), Image.Resampling.LANCZOS)),
        "face.jpg": jpeg(hopper),
        "photo.png": png.getvalue(),
    }


class Counts:
    """Counts decodes (with the size decoded) and object-store reads while installed."""

    def __init__(self):
        self.decodes: list[tuple[int, int]] = []
        self.reads: list[str] = []

    def install(self, store_class) -> None:
        from PIL import ImageFile

        load, get = ImageFile.ImageFile.load, store_class.get
        counts = self

        def counted_load(image):
            if image.tile:  # data left to decode: a real decode
                counts.decodes.append(image.size)
            return load(image)

        def counted_get(store, key, *args, **kwargs):
            counts.reads.append(key)
            return get(store, key, *args, **kwargs)

        ImageFile.ImageFile.load = counted_load
        store_class.get = counted_get
        self._restore = lambda: (
            setattr(ImageFile.ImageFile, "load", load),
            setattr(store_class, "get", get),
        )

    def uninstall(self) -> None:
        self._restore()


def world(home: Path):
    """Settings, stores and models, whichever shape the checkout has."""
    from busque.config import Settings

    settings = Settings(home=home).ensure_secrets()
    try:
        from busque.runtime import Runtime
    except ImportError:  # before the composition root
        from busque.serve.runtime import Runtime
    runtime = Runtime(settings)
    from busque.db.migrate import upgrade

    upgrade(settings.database.url)
    if hasattr(runtime, "new_embedder"):
        embedder, faces = runtime.new_embedder(), runtime.new_face_analyzer()
    else:
        from busque.serve.embedder import build_embedder
        from busque.serve.faces import build_face_analyzer

        embedder, faces = build_embedder(settings), build_face_analyzer(settings)
    embedder.load()
    faces.load()
    return settings, runtime, embedder, faces


def services(settings, runtime, embedder, face_model):
    """The ingest job's services, done in this process as the deployments do them."""
    import dataclasses

    from busque.faces.analyze import FaceServices
    from busque.faces.index import FaceIndex
    from busque.faces.store import FaceStore
    from busque.media.decode import decode_reduced
    from busque.media.ingest import IngestServices

    async def embed(item):
        if isinstance(item, bytes | bytearray):  # before: the Embedder decoded what it was sent
            item = decode_reduced(item, min_side=embedder.source_side)
        vectors, labels = embedder.analyze_prepared([embedder.prepare(item)], 5)
        return {"vector": vectors[0], "labels": labels[0]}

    async def analyze_key(key):
        (found,) = face_model.analyze([runtime.objects.get(key)])
        return [face.to_dict() for face in found]

    async def analyze_image(image):
        (found,) = face_model.analyze([image])
        return [face.to_dict() for face in found]

    async def nothing(*args, **kwargs):
        return []

    store = getattr(runtime, "faces", None) or FaceStore(runtime.engine)
    face_fields = {f.name for f in dataclasses.fields(FaceServices)}
    faces = FaceServices(
        objects=runtime.objects,
        store=store,
        index=FaceIndex(store),
        analyze=analyze_key,
        model=settings.faces.backend,
        settings=settings.faces,
        **({"analyze_image": analyze_image} if "analyze_image" in face_fields else {}),
    )
    fields = {f.name for f in dataclasses.fields(IngestServices)}
    extra = {}
    if "model_side" in fields:
        extra["model_side"] = embedder.source_side
    if "collections" in fields:
        extra["collections"] = runtime.collections
    return IngestServices(
        objects=runtime.objects,
        catalog=runtime.catalog,
        embed=embed,
        index_add=nothing,
        index_search=nothing,
        embedding_model="m",
        embedding_version="1",
        faces=faces,
        **extra,
    )


def inspect_upload():
    try:
        from busque.api.ingest import _inspect
    except ImportError:  # before api/media.py was split
        from busque.api.media import _inspect
    return _inspect


async def ingest_one(settings, runtime, svc, tenant: str, name: str, data: bytes, counts):
    import inspect as pyinspect

    from busque.ids import new_id
    from busque.media.ingest import run_ingest
    from busque.media.normalize import CONTENT_TYPES, storage_keys
    from busque.media.phash import hex_to_int64

    check = inspect_upload()
    started = time.perf_counter()
    checked = check(data, settings.media.max_pixels)  # the API, at once
    info, phash_hex, sha256 = checked[0], checked[1], checked[-1]
    # since the turns' and mirrors' pHashes: (info, phash, variants, sha256)
    variants = {"phash_variants": checked[2]} if len(checked) == 4 else {}
    accepted = len(counts.decodes), len(counts.reads)
    media_id = new_id("med")
    keys = storage_keys(tenant, media_id, sha256, info.format)
    runtime.catalog.create(
        tenant,
        "bench",
        sha256=sha256,
        phash=hex_to_int64(phash_hex),
        width=info.width,
        height=info.height,
        format=info.format,
        size=len(data),
        metadata={},
        media_id=media_id,
        **variants,
    )
    runtime.objects.put(keys["original"], data, CONTENT_TYPES.get(info.format))
    job = {
        "id": new_id("job"),
        "tenant_id": tenant,
        "input": {
            "media_id": media_id,
            "original_key": keys["original"],
            "keys": {k: v for k, v in keys.items() if k != "original"},
            "k": 10,
            "analyze_faces": True,
        },
    }

    async def progress(percent, message):
        pass

    takes = pyinspect.signature(run_ingest).parameters["settings"].annotation
    job_settings = settings.media if "MediaSettings" in str(takes) else settings
    await run_ingest(job, svc, job_settings, progress)
    seconds = time.perf_counter() - started
    return {
        "photo": name,
        "bytes": len(data),
        "decodes": len(counts.decodes),
        "decodes_at_submission": accepted[0],
        "decoded_sizes": [list(size) for size in counts.decodes],
        "decoded_megapixels": round(sum(w * h for w, h in counts.decodes) / 1e6, 2),
        "object_reads": len(counts.reads),
        "reads_of_the_original": sum(key == keys["original"] for key in counts.reads),
        "seconds": round(seconds, 3),
    }


def script_one(settings, embedder, face_model, data: bytes, counts) -> dict:
    """The peer: decode once in full, make every output from that image."""
    import imagehash
    from PIL import Image, ImageOps

    started = time.perf_counter()
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    outputs = {}
    for name, side, kind in (
        ("normalized", settings.media.normalized_side, "JPEG"),
        ("thumbnail", settings.media.thumbnail_side, "WEBP"),
    ):
        copy = image.copy()
        copy.thumbnail((side, side), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        copy.save(out, kind, quality=85)
        outputs[name] = out.getvalue()
    str(imagehash.phash(image))
    embedder.analyze([image], 5)
    face_model.analyze([image])
    return {
        "decodes": len(counts.decodes),
        "decoded_sizes": [list(size) for size in counts.decodes],
        "decoded_megapixels": round(sum(w * h for w, h in counts.decodes) / 1e6, 2),
        "object_reads": len(counts.reads),
        "seconds": round(time.perf_counter() - started, 3),
    }


BUSQUE, SCRIPT = "busque", "script, one full decode"


def counted(store_class, run):
    """run(counts) with decodes and reads counted."""
    counts = Counts()
    counts.install(store_class)
    try:
        return run(counts)
    finally:
        counts.uninstall()


def page(data: dict) -> str:
    lines = [
        f"# Ingest I/O: busque against a one-decode script ({data['label']})",
        "",
        f"Per photo, from the API's check to the end of the ingest job (embedding and faces "
        f"included), {data['rounds']} rounds interleaved; seconds: median [interval] over "
        "rounds; busque vs script: the script's seconds / busque's, paired per round. Decodes "
        "and megapixels decoded are exact counts (Pillow's loads with data left to decode).",
        "",
        "| photo | bytes | case | decodes | MP decoded | object reads | seconds "
        "| busque vs script | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in data["photos"].items():
        for case in (BUSQUE, SCRIPT):
            cell = row[case]
            vs = row["vs"] if case == BUSQUE else None
            ratio = f"{harness.show(vs['ratio'])} | **{vs['verdict']}**" if vs else "- | -"
            lines.append(
                f"| {name} | {row['bytes']:,} | {case} | {cell['decodes']} "
                f"| {cell['decoded_megapixels']} | {cell['object_reads']} "
                f"| {harness.show(cell['seconds'], 3)} | {ratio} |"
            )
    behind = [
        f"- {name}: {harness.show(row['vs']['ratio'])}"
        for name, row in data["photos"].items()
        if row["vs"]["verdict"] == "behind"
    ]
    lines += ["", "## Where busque is behind", ""]
    lines += (
        [f"Behind in {len(behind)} of {len(data['photos'])} photos:", *behind]
        if behind
        else ["Nowhere in this run."]
    )
    totals = data["totals"]
    lines += [
        "",
        "## Reading",
        "",
        f"- Decodes over every photo: busque {totals[BUSQUE]['decodes']} "
        f"({totals[BUSQUE]['decoded_megapixels']} MP, {totals[BUSQUE]['object_reads']} "
        f"object reads), the script {totals[SCRIPT]['decodes']} "
        f"({totals[SCRIPT]['decoded_megapixels']} MP). busque decodes twice (the API's check "
        "at reduced scale at once, then the job's decode at reduced scale from its one read "
        "of the stored original); the script decodes once in full and reads nothing back (it "
        "holds the upload), which a service that answers at once and runs the job later "
        "cannot do.",
        "- busque also writes the catalog row and the original, and reads the original back; "
        "the script stores nothing.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--label", default="after", help="names the result file")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (>= 5)")
    parser.add_argument("--quick", action="store_true", help="1 photo, 5 rounds")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 5

    from busque.storage.local import LocalObjectStore

    chosen = photos()
    if args.quick:
        chosen = {"face.jpg": chosen["face.jpg"]}
    last: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        settings, runtime, embedder, faces = world(Path(tmp))
        tenant = runtime.keys.ensure_tenant("bench")
        svc = services(settings, runtime, embedder, faces)

        def busque(name, data):
            def run(counts):
                return asyncio.run(ingest_one(settings, runtime, svc, tenant, name, data, counts))

            last[(name, BUSQUE)] = counted(LocalObjectStore, run)

        def script(name, data):
            run = lambda counts: script_one(settings, embedder, faces, data, counts)  # noqa: E731
            last[(name, SCRIPT)] = counted(LocalObjectStore, run)

        cases = {}
        for name, data in chosen.items():
            cases[f"{name}|{BUSQUE}"] = lambda n=name, d=data: busque(n, d)
            cases[f"{name}|{SCRIPT}"] = lambda n=name, d=data: script(n, d)
        samples = harness.interleaved(cases, args.rounds, desc="rounds")

    keep = ("decodes", "decoded_sizes", "decoded_megapixels", "object_reads")
    summary = {}
    for name, data in chosen.items():
        mine, peer = samples[f"{name}|{BUSQUE}"]["wall_s"], samples[f"{name}|{SCRIPT}"]["wall_s"]
        ratio = harness.ratio_interval(peer, mine)
        summary[name] = {
            "bytes": len(data),
            "vs": {"ratio": ratio, "verdict": harness.verdict(ratio)},
            **{
                case: {
                    **{k: last[(name, case)][k] for k in keep},
                    "seconds": harness.median_interval(samples[f"{name}|{case}"]["wall_s"]),
                }
                for case in (BUSQUE, SCRIPT)
            },
        }
        summary[name][BUSQUE]["decodes_at_submission"] = last[(name, BUSQUE)][
            "decodes_at_submission"
        ]
    totals = {
        case: {
            key: round(sum(row[case][key] for row in summary.values()), 2)
            for key in ("decodes", "decoded_megapixels", "object_reads")
        }
        for case in (BUSQUE, SCRIPT)
    }
    result = {
        "label": args.label,
        "rounds": args.rounds,
        "photos": summary,
        "totals": totals,
        "samples": samples,
    }
    harness.publish(f"ingest_io_{args.label}", result, page(result), args)


if __name__ == "__main__":
    main()
