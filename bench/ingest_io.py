"""Decodes and object-store reads per ingested photo: what one `POST /v1/ingest` costs in image
decoding and storage I/O, from the request's check to the end of its job (embedding and faces
included).

It runs the code each step of the service runs (the API's check, the ingest job with the
Embedder's and the FaceAnalyzer's model work done in this process as their deployments do it),
on a local object store, and counts every image decode (Pillow's ImageFile.load with data left
to decode, with the size it decoded at) and every object-store read. It runs against the code of
the checkout it sits in, so the same file run from an older checkout (copy bench/harness.py
beside it) measures the code before a change (the script knows both shapes of the ingest job:
before and after busque.media.render).

    python bench/ingest_io.py                      # writes bench/results/ingest_io_<label>.json
    python bench/ingest_io.py --label before       # e.g. from a worktree of an older commit
"""

from __future__ import annotations

import asyncio
import io
import sys
import tempfile
import time
from collections import Counter
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
    info, phash_hex, sha256 = check(data, settings.media.max_pixels)  # the API, at once
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


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--label", default="after", help="names the result file")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each photo (timing)")
    args = parser.parse_args()

    from busque.storage.local import LocalObjectStore

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        settings, runtime, embedder, faces = world(Path(tmp))
        tenant = runtime.keys.ensure_tenant("bench")
        svc = services(settings, runtime, embedder, faces)
        for name, data in photos().items():
            for _ in range(args.repeat):
                counts = Counts()
                counts.install(LocalObjectStore)
                try:
                    row = asyncio.run(
                        ingest_one(settings, runtime, svc, tenant, name, data, counts)
                    )
                finally:
                    counts.uninstall()
                rows.append(row)
    by_photo: dict[str, list[dict]] = {}
    for row in rows:
        by_photo.setdefault(row["photo"], []).append(row)
    summary = {
        name: {
            **{k: runs[-1][k] for k in runs[-1] if k != "seconds"},
            "seconds_median": sorted(r["seconds"] for r in runs)[len(runs) // 2],
        }
        for name, runs in by_photo.items()
    }
    result = {
        "label": args.label,
        "commit": harness.commit(),
        "uncommitted_changes": harness.uncommitted("busque", "pipelines"),
        "photos": summary,
        "totals": dict(
            Counter(
                {
                    "decodes": sum(s["decodes"] for s in summary.values()),
                    "object_reads": sum(s["object_reads"] for s in summary.values()),
                }
            )
        ),
    }
    harness.write_results(f"ingest_io_{args.label}", result, write=not args.no_write)


if __name__ == "__main__":
    main()
