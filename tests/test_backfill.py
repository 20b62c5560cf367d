"""Backfill of a generated legacy library (real photos from packages, transformed copies, exact
copies, corrupt and unsupported files) into the real app's catalog and object store: the dry-run
report, upload and catalog, search through the API, aliases, idempotent reruns, resume."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from busque.faces.store import FaceStore
from busque.media.library import LibraryStore
from busque.runtime import Runtime
from pipelines.backfill import backfill, summary
from tests.test_store import db_url  # noqa: F401 - a fresh PostgreSQL database
from tests.video_files import corrupt_video, make_video, transcode

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "horse", "moon", "coins")


def jpeg(image: Image.Image, quality: int = 90, exif: Image.Exif | None = None) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, **({"exif": exif} if exif else {}))
    return out.getvalue()


def make_library(root: Path, variants: int = 0) -> dict:
    """The library and what a correct backfill must find in it; `variants` more photos are
    transformed copies (a slight crop, resized, recompressed, brighter or darker) of the eight."""
    import random

    import skimage.data
    from PIL import ImageEnhance

    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "EOS 5D"
    exif.get_ifd(0x8769)[0x9003] = "2009:07:14 10:22:01"
    for i, name in enumerate(PHOTOS):
        image = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        folder = root / f"album{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.jpg").write_bytes(jpeg(image, exif=exif if i == 0 else None))
        if i < 4:  # near duplicates: smaller, recompressed
            small = image.resize((image.width * 3 // 4, image.height * 3 // 4))
            (folder / f"{name}-small.jpg").write_bytes(jpeg(small, quality=60))
    copies = root / "backup" / "2019"
    copies.mkdir(parents=True)
    for name in PHOTOS[:3]:  # exact duplicates in another folder
        shutil.copy(next(root.glob(f"album*/{name}.jpg")), copies / f"copy-of-{name}.jpg")
    good = (root / "album0" / "astronaut.jpg").read_bytes()
    (root / "broken.jpg").write_bytes(good[: len(good) // 3])
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.txt").write_text("not a photo")
    videos = root / "videos"  # a video, an exact copy, a re-encoded copy, a truncated one
    videos.mkdir()
    make_video(videos / "holiday.mp4", seconds=2.0, size=(320, 240), photo="chelsea")
    shutil.copy(videos / "holiday.mp4", copies / "holiday-copy.mp4")
    transcode(videos / "holiday.mp4", videos / "holiday-small.mkv", size=(160, 120))
    corrupt_video(videos / "holiday.mp4", root / "broken.mp4")
    rng = random.Random(0)
    for k in range(variants):
        name = PHOTOS[k % len(PHOTOS)]
        image = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        w, h = image.size
        cut = rng.uniform(0, 0.03)
        image = image.crop((int(w * cut), int(h * cut), w - int(w * cut), h - int(h * cut)))
        image = image.resize((rng.randint(160, 400), rng.randint(160, 400)))
        image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.9, 1.1))
        folder = root / "variants" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}-{k:04d}.jpg").write_bytes(jpeg(image, quality=rng.randint(50, 95)))
    return {
        "files": 8 + 4 + 3 + 3 + 4 + variants,
        "unique": 14 + variants,
        "exact_groups": 4,
        "failed": 4,
    }


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("legacy-library")
    return root, make_library(root)


def tenant_of(app, name: str) -> str:
    return Runtime(app.settings).keys.ensure_tenant(name)


def test_dry_run_reports_and_stores_nothing(app, library):
    root, expect = library
    tenant = tenant_of(app, "backfill-dry")
    report = backfill(
        Runtime(app.settings), tenant, root, collection="legacy", dry_run=True, progress=False
    )
    assert report["files_seen"] == expect["files"]
    assert report["unique_new"] == expect["unique"]
    assert len(report["exact_duplicate_groups"]) == expect["exact_groups"]
    assert ["album0/astronaut.jpg", "backup/2019/copy-of-astronaut.jpg"] in report[
        "exact_duplicate_groups"
    ]
    near = report["near_duplicate_groups"]
    assert any({"album0/astronaut.jpg", "album0/astronaut-small.jpg"} <= set(g) for g in near)
    failed = {f["path"]: f["error"] for f in report["failures"]}
    assert failed == {
        "broken.jpg": "invalid_image",
        "empty.jpg": "invalid_image",
        "notes.txt": "unsupported",
        "broken.mp4": "invalid_video",
    }
    # The re-encoded copy groups with the video (named by one of its two exact copies).
    (group,) = report["near_duplicate_video_groups"]
    assert "videos/holiday-small.mkv" in group and len(group) == 2
    assert {"videos/holiday.mp4", "backup/2019/holiday-copy.mp4"} & set(group)
    assert report["bytes_saved_by_dedupe"] > 0
    assert report["near_duplicate_embedding_groups"] is None  # a dry run embeds nothing
    assert "exact duplicate groups" in summary(report)
    runtime = Runtime(app.settings)
    assert runtime.catalog.list(tenant, states=())[0] == []
    assert LibraryStore(runtime.engine).synced(tenant, "legacy") == {}


def test_backfill_uploads_catalogs_and_the_service_finds_it(app, library):
    root, expect = library
    tenant = tenant_of(app, "backfill-real")
    report = backfill(Runtime(app.settings), tenant, root, collection="legacy", progress=False)
    assert report["uploaded"] == expect["unique"] and report["failed"] == expect["failed"]
    # The smaller, recompressed copies are near duplicates by embedding too; two different
    # photos are not.
    similar = report["near_duplicate_embedding_groups"]
    assert any({"album0/astronaut.jpg", "album0/astronaut-small.jpg"} <= set(g) for g in similar)
    assert not any({"album0/astronaut.jpg", "album1/chelsea.jpg"} <= set(g) for g in similar)
    runtime = Runtime(app.settings)
    rows, _ = runtime.catalog.list(tenant, collection="legacy", limit=100)
    assert len(rows) == expect["unique"] and all(r["synced_at"] for r in rows)
    assert len({r["sha256"] for r in rows}) == len(rows)  # each photo stored once
    astronaut = next(r for r in rows if r["metadata"]["source_path"] == "album0/astronaut.jpg")
    assert astronaut["metadata"]["captured_at"] == "2009-07-14T10:22:01"
    assert astronaut["metadata"]["camera"] == "Canon EOS 5D"
    assert LibraryStore(runtime.engine).aliases(tenant, astronaut["id"]) == [
        "album0/astronaut.jpg",
        "backup/2019/copy-of-astronaut.jpg",
    ]
    assert runtime.objects.stat(astronaut["original_key"]) is not None
    (face,) = FaceStore(runtime.engine).faces_of_media(tenant, [astronaut["id"]])[astronaut["id"]]
    assert abs(face["box"][0] - 179) < 10 and runtime.objects.stat(face["thumbnail_key"])
    (video,) = [
        r
        for r in rows
        if r["metadata"]["source_path"] in ("videos/holiday.mp4", "backup/2019/holiday-copy.mp4")
    ]
    assert video["metadata"]["kind"] == "video" and abs(video["metadata"]["duration_s"] - 2) < 0.3
    assert len(video["metadata"]["keyframe_phashes"]) >= 2 and video["format"] == "mp4"
    assert (
        runtime.objects.stat(video["original_key"]).size
        == (root / "videos/holiday.mp4").stat().st_size
    )
    assert LibraryStore(runtime.engine).aliases(tenant, video["id"]) == [
        "backup/2019/holiday-copy.mp4",
        "videos/holiday.mp4",
    ]
    # Searchable through the API (the Matcher replays the catalog's change log).
    key = runtime.keys.create("backfill-real", "test").key
    with app.client(key) as client:
        query = (root / "album1" / "chelsea.jpg").read_bytes()
        deadline = time.monotonic() + 30
        while True:
            found = client.post(
                "/v1/search",
                files={"image": ("q.jpg", query, "image/jpeg")},
                data={"collection": "legacy", "k": "3"},
            ).json()["matches"]
            if found or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert found[0]["metadata"]["source_path"] == "album1/chelsea.jpg"
        assert found[0]["labels"][0]["label"]  # embedded, with labels
        # The exact duplicates the backfill stored once, with every path they were found at.
        exact = client.get("/v1/duplicates", params={"collection": "legacy"}).json()
        groups = {g["media_ids"][0]: g for g in exact["exact_files"]}
        assert len(groups) == expect["exact_groups"]
        assert [f["path"] for f in groups[astronaut["id"]]["files"]] == [
            "album0/astronaut.jpg",
            "backup/2019/copy-of-astronaut.jpg",
        ]
        assert groups[astronaut["id"]]["savings_bytes"] == astronaut["bytes"]
        savings = [g["savings_bytes"] for g in exact["exact_files"]]
        assert savings == sorted(savings, reverse=True)
        assert groups[video["id"]]["copies"] == 2  # the video and its copy

    again = backfill(Runtime(app.settings), tenant, root, collection="legacy", progress=False)
    assert again["skipped_unchanged"] == expect["files"] - expect["failed"]
    assert again["uploaded"] == 0 and again["unique_new"] == 0
    assert len(runtime.catalog.list(tenant, collection="legacy", limit=100)[0]) == expect["unique"]

    # A new file that is a copy of a stored photo: an alias, no upload.
    shutil.copy(root / "album1" / "chelsea.jpg", root / "chelsea-again.jpg")
    third = backfill(Runtime(app.settings), tenant, root, collection="legacy", progress=False)
    assert third["already_stored"] == 1 and third["uploaded"] == 0
    os.remove(root / "chelsea-again.jpg")


def add_generated(root: Path, count: int = 40) -> None:
    """Plain generated photos: enough batches for a kill to land mid-run."""
    for i in range(count):
        image = Image.new("RGB", (320, 240), (i * 6 % 256, i * 3 % 256, 200 - i))
        (root / f"gen-{i:03d}.jpg").write_bytes(jpeg(image))


def kill_and_resume(settings, env: dict, source: str, expect: dict, tenant_name: str) -> None:
    """Run `python -m pipelines.backfill` (on the test's Ray cluster), SIGKILL it once a few
    files are synced, run the backfill again: every readable file synced once, every unique
    photo stored once."""
    import ray

    runtime = Runtime(settings)
    tenant = runtime.keys.ensure_tenant(tenant_name)
    store = LibraryStore(runtime.engine)
    env = {
        **os.environ,
        **env,
        "RAY_ADDRESS": ray.get_runtime_context().gcs_address,
        "BUSQUE_PIPELINES__BATCH_SIZE": "4",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipelines.backfill",
            source,
            "--tenant",
            tenant,
            "--collection",
            "resume",
            "--quiet",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while len(store.synced(tenant, "resume")) < 5:
        assert process.poll() is None, "the backfill ended before it could be killed"
        assert time.monotonic() < deadline, "the backfill synced nothing in time"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    partial = len(store.synced(tenant, "resume"))
    assert partial < expect["files"] - expect["failed"], "killed too late to test a resume"
    # the killed run's journals are swept at once (not after the default hour)
    now = settings.model_copy(
        update={"pipelines": settings.pipelines.model_copy(update={"orphan_grace_s": 0})}
    )
    report = backfill(Runtime(now), tenant, source, collection="resume", progress=False)
    assert report["skipped_unchanged"] >= partial
    rows, _ = runtime.catalog.list(tenant, collection="resume", limit=500)
    assert len(rows) == expect["unique"] and len({r["sha256"] for r in rows}) == len(rows)
    assert all(r["state"] == "indexed" and r["synced_at"] for r in rows)
    # every readable file, once
    assert len(store.synced(tenant, "resume")) == expect["files"] - expect["failed"]
    # nothing the killed run wrote is left uncatalogued: every rendition and face thumbnail
    # stored is a row's, and no journal remains
    from sqlalchemy import select

    from busque.db.schema import faces
    from pipelines.pending import PREFIX

    stored = {
        info.key
        for folder in ("normalized/", "thumbs/", "faces/", f"{PREFIX}/")
        for info in runtime.objects.list(f"{tenant}/{folder}")
    }
    with runtime.engine.connect() as conn:
        face_keys = set(
            conn.scalars(
                select(faces.c.thumbnail_key).where(
                    faces.c.tenant_id == tenant, faces.c.thumbnail_key.is_not(None)
                )
            )
        )
    assert stored == {r[k] for r in rows for k in ("normalized_key", "thumbnail_key")} | face_keys


def test_a_killed_backfill_resumes_without_duplicates(app, tmp_path):
    root = tmp_path / "big"
    expect = make_library(root)
    add_generated(root)
    expect = expect | {"files": expect["files"] + 40, "unique": expect["unique"] + 40}
    env = {"BUSQUE_HOME": str(app.settings.home)}
    kill_and_resume(app.settings, env, str(root), expect, "backfill-resume")


def test_watch_mode_processes_new_files_as_they_appear(app, tmp_path):
    import threading

    from pipelines.backfill import watch

    root = tmp_path / "watched"
    root.mkdir()
    tenant = tenant_of(app, "backfill-watch")
    runtime = Runtime(app.settings)
    stop, reports = threading.Event(), []
    watcher = threading.Thread(
        target=watch,
        args=(Runtime(app.settings), tenant, root),
        kwargs={
            "interval_s": 0.3,
            "stop": stop,
            "on_report": reports.append,
            "collection": "watched",
            "progress": False,
        },
        daemon=True,
    )
    watcher.start()
    try:
        import skimage.data

        image = Image.fromarray(skimage.data.chelsea())
        (root / "new-cat.jpg").write_bytes(jpeg(image))
        deadline = time.monotonic() + 60
        while not runtime.catalog.list(tenant, collection="watched")[0]:
            assert time.monotonic() < deadline, "the watcher never picked the new file up"
            time.sleep(0.3)
        (row,) = runtime.catalog.list(tenant, collection="watched")[0]
        assert row["metadata"]["source_path"] == "new-cat.jpg"
    finally:
        stop.set()
        watcher.join(60)
    assert reports and reports[0]["uploaded"] == 1


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_backfill_from_an_s3_prefix_into_s3_and_postgresql(
    ray_cluster,
    db_url,  # noqa: F811
    seaweedfs_server,
    tmp_path,
):
    """The cluster set-up: the library in a bucket, busque on PostgreSQL and S3 (SeaweedFS):
    counts, dedupe groups, idempotency, and a resume after a kill."""
    import uuid

    from minio import Minio

    from busque.config import Settings

    local = tmp_path / "library"
    variants = 120  # and the eight photos, a video, byte copies, broken files
    expect = make_library(local, variants=variants)
    server = seaweedfs_server
    endpoint = server["endpoint"].split("://")[-1]
    client = Minio(endpoint, server["access_key"], server["secret_key"], secure=False)
    bucket = f"legacy-{uuid.uuid4().hex[:8]}"
    client.make_bucket(bucket)
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        client.fput_object(bucket, f"family/{path.relative_to(local).as_posix()}", str(path))
    settings = Settings(
        home=tmp_path / "home",
        database={"url": db_url},
        storage={
            "backend": "s3",
            "s3_endpoint": server["endpoint"],
            "s3_access_key": server["access_key"],
            "s3_secret_key": server["secret_key"],
            "s3_bucket": f"busque-{uuid.uuid4().hex[:8]}",
        },
        faces={"enabled": False},
    ).ensure_secrets()
    tenant = Runtime(settings).keys.ensure_tenant("s3-family")
    source = f"s3://{bucket}/family"
    report = backfill(Runtime(settings), tenant, source, collection="legacy", progress=False)
    assert report["root"] == source and report["files_seen"] == expect["files"]
    assert report["uploaded"] == expect["unique"] and report["failed"] == expect["failed"]
    assert len(report["exact_duplicate_groups"]) == expect["exact_groups"]
    # each photo's transformed copies group with it, by pHash and by embedding
    for groups in (report["near_duplicate_groups"], report["near_duplicate_embedding_groups"]):
        for i, name in enumerate(PHOTOS):
            names = range(i, variants, len(PHOTOS))
            copies = {f"variants/{name}/{name}-{k:04d}.jpg" for k in names}
            best = max((set(g) & copies for g in groups), key=len, default=set())
            assert len(best) >= len(copies) // 2, (name, len(best), len(copies))
    runtime = Runtime(settings)
    rows, _ = runtime.catalog.list(tenant, collection="legacy", limit=500)
    assert len(rows) == expect["unique"]
    assert all(runtime.objects.stat(r["original_key"]) for r in rows)  # stored in busque's S3
    again = backfill(Runtime(settings), tenant, source, collection="legacy", progress=False)
    assert again["skipped_unchanged"] == expect["files"] - expect["failed"]
    assert again["uploaded"] == 0

    # Killed halfway and run again, on the same S3 library, PostgreSQL and S3 store.
    env = {
        "BUSQUE_HOME": str(settings.home),
        "BUSQUE_DATABASE__URL": db_url,
        "BUSQUE_FACES__ENABLED": "false",
        **{
            f"BUSQUE_STORAGE__{name.upper()}": str(getattr(settings.storage, name))
            for name in ("backend", "s3_endpoint", "s3_access_key", "s3_secret_key", "s3_bucket")
        },
    }
    kill_and_resume(settings, env, source, expect, "s3-resume")


def test_a_videos_faces_come_from_frames_sampled_over_it(app, tmp_path):
    """A video with a face in it: the face is found in the sampled frames, stored once for the
    video (not once per frame), with the frame's time and a box in the video's pixels."""
    import skimage.data

    from tests.video_files import encode_frames

    face = Image.fromarray(skimage.data.astronaut()).resize((400, 400))

    def frame(i: int) -> Image.Image:
        canvas = Image.new("RGB", (640, 480), (40, 40, 40))
        canvas.paste(face, (20 + 8 * i, 40))
        return canvas

    root = tmp_path / "clips"
    root.mkdir()
    encode_frames(root / "visit.mp4", (frame(i) for i in range(20)), fps=10, kind="mp4")
    tenant = tenant_of(app, "backfill-video-faces")
    report = backfill(Runtime(app.settings), tenant, root, collection="clips", progress=False)
    assert report["uploaded"] == 1 and report["failed"] == 0
    runtime = Runtime(app.settings)
    (video,) = runtime.catalog.list(tenant, collection="clips", limit=10)[0]
    (found,) = FaceStore(runtime.engine).faces_of_media(tenant, [video["id"]])[video["id"]]
    assert 0 < found["frame_s"] < 2.0
    x, y, w, h = found["box"]
    assert 0 <= x <= x + w <= 640 and 0 <= y <= y + h <= 480 and w > 50
    assert runtime.objects.stat(found["thumbnail_key"]) is not None


def test_a_batch_is_written_whole_or_not_at_all(app, tmp_path):
    """The driver writes a batch (media rows, faces, library files) in one transaction: when
    it fails halfway, no row of it remains and its face thumbnails are removed again."""
    import numpy as np

    from busque.faces.index import FaceIndex
    from busque.ids import new_id
    from busque.media.library import LibraryFile
    from pipelines.backfill.commit import write_batch
    from pipelines.backfill.context import Run

    runtime = Runtime(app.settings)
    tenant = tenant_of(app, "backfill-atomic")
    store = LibraryStore(runtime.engine)
    run = Run(
        runtime=runtime,
        store=store,
        tenant=tenant,
        collection="atomic",
        library="atomic",
        by_path={},
        spec=str(tmp_path),
        embeddings=True,
        faces=True,
        progress=False,
    )

    ids = {1: new_id("med"), 2: new_id("med")}

    def item(n: int, faces: list | None) -> dict:
        return {
            "media_id": ids[n],
            "sha256": f"{n:064x}",
            "phash": n,
            "width": 64,
            "height": 48,
            "format": "jpeg",
            "size": 100 + n,
            "metadata": {"source_path": f"p{n}.jpg"},
            "keys": {"original": f"o{n}", "normalized": f"n{n}", "thumbnail": f"t{n}"},
            "embedding": np.ones(1280, dtype=np.float32) / np.sqrt(1280),
            "labels": [],
            "faces": faces,
            "files": [LibraryFile(f"p{n}.jpg", 100 + n, 1.0, "image")],
        }

    face = {"box": [1, 2, 3, 4], "score": 1.0, "embedding": [0.0] * 128, "thumbnail": b"\xff\xd8"}
    broken = {**face, "box": ["not", "a", "box", "!"]}  # fails inside the transaction
    faces = FaceStore(runtime.engine)
    with pytest.raises(ValueError):
        write_batch(
            run,
            {"model": "m", "version": "v"},
            faces,
            FaceIndex(faces),
            [item(1, [dict(face)]), item(2, [dict(broken)])],
        )
    assert runtime.catalog.get(ids[1]) is None and runtime.catalog.get(ids[2]) is None
    assert store.synced(tenant, "atomic") == {}
    assert list(runtime.objects.list(f"{tenant}/faces/")) == []

    write_batch(
        run, {"model": "m", "version": "v"}, faces, FaceIndex(faces), [item(1, [dict(face)])]
    )
    row = runtime.catalog.get(ids[1])
    assert row["state"] == "indexed" and row["synced_at"] and row["embedding_model"] == "m"
    assert store.synced(tenant, "atomic") == {"p1.jpg": (101, 1.0)}
    (stored,) = faces.faces_of_media(tenant, [ids[1]])[ids[1]]
    assert runtime.objects.stat(stored["thumbnail_key"]) is not None


def test_a_name_that_is_not_utf8_is_stored_as_text_and_reruns_add_nothing(app, tmp_path):
    """A file name with bytes that are not UTF-8 is read by its real name and stored (catalog,
    synced paths, report) with those bytes as \\xNN; a rerun skips it. A name that would read
    the same as another file's is a failure, and the run goes on."""
    root = tmp_path / "odd-names"
    root.mkdir()
    raw = os.fsencode(root)
    for i, name in enumerate([b"bad\xffbyte.jpg", b"clash\xfe.jpg", b"clash\\xfe.jpg"]):
        image = Image.new("RGB", (64, 48), (40 * i, 90, 200 - 40 * i))
        with open(raw + b"/" + name, "wb") as out:
            out.write(jpeg(image))
    tenant = tenant_of(app, "backfill-odd-names")
    report = backfill(
        Runtime(app.settings), tenant, root, collection="odd-names", faces=False, progress=False
    )
    assert report["files_seen"] == 3 and report["uploaded"] == 2
    assert report["failures"] == [
        {
            "path": "clash\\xfe.jpg",
            "error": "name_clash",
            "message": "its name is not UTF-8 and reads the same as another file's",
        }
    ]
    runtime = Runtime(app.settings)
    rows, _ = runtime.catalog.list(tenant, collection="odd-names", limit=10)
    assert sorted(r["metadata"]["source_path"] for r in rows) == [
        "bad\\xffbyte.jpg",
        "clash\\xfe.jpg",  # the file of that literal name
    ]
    store = LibraryStore(runtime.engine)
    synced = store.synced(tenant, "odd-names")
    assert sorted(synced) == ["bad\\xffbyte.jpg", "clash\\xfe.jpg"]

    again = backfill(
        Runtime(app.settings), tenant, root, collection="odd-names", faces=False, progress=False
    )
    assert again["skipped_unchanged"] == 2 and again["uploaded"] == 0 and again["failed"] == 1
    assert store.synced(tenant, "odd-names") == synced
    assert len(runtime.catalog.list(tenant, collection="odd-names", limit=10)[0]) == 2


def test_backfill_refuses_a_bad_collection_and_a_missing_folder(app, tmp_path):
    tenant = tenant_of(app, "backfill-checks")
    with pytest.raises(ValueError, match="invalid collection name '../x'"):
        backfill(Runtime(app.settings), tenant, tmp_path, collection="../x", progress=False)
    with pytest.raises(ValueError, match="no such folder"):
        backfill(Runtime(app.settings), tenant, tmp_path / "nowhere", progress=False)
    (tmp_path / "a.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match="no such folder"):
        backfill(Runtime(app.settings), tenant, tmp_path / "a.jpg", progress=False)


def test_the_backfill_command_needs_an_existing_tenant_unless_told_to_create_it(
    app, tmp_path, capsys, monkeypatch
):
    """`busque backfill`'s run(): an unknown --tenant is refused (nothing created) unless
    --create-tenant; Ctrl-C ends it with a one-line message and exit status 130."""
    import argparse

    import pipelines.backfill.command as pipeline

    root = tmp_path / "lib"
    root.mkdir()
    (root / "one.jpg").write_bytes(jpeg(Image.new("RGB", (64, 48), (10, 120, 30))))
    parser = argparse.ArgumentParser()
    pipeline.add_arguments(parser)

    def run(*args: str) -> int:
        return pipeline.run(Runtime(app.settings), parser.parse_args([str(root), "--quiet", *args]))

    keys = Runtime(app.settings).keys
    assert run("--tenant", "backfill-nobody", "--dry-run") == 1
    assert "no tenant 'backfill-nobody'" in capsys.readouterr().err
    assert keys.tenant_id("backfill-nobody") is None
    assert run("--tenant", "ten_000000000000", "--create-tenant", "--dry-run") == 1
    assert "cannot start with 'ten_'" in capsys.readouterr().err

    assert run("--tenant", "backfill-new", "--create-tenant", "--dry-run") == 0
    tenant = keys.tenant_id("backfill-new")
    assert tenant is not None and f'"tenant": "{tenant}"' in capsys.readouterr().out
    assert run("--tenant", tenant, "--dry-run") == 0  # by id, too
    assert "busque keys create" not in capsys.readouterr().err  # a dry run stores nothing
    # A real run ends by saying where the media went and how to reach them.
    assert run("--tenant", "backfill-new", "--collection", "lib") == 0
    told = capsys.readouterr().err
    assert f"tenant 'backfill-new' ({tenant}), collection 'lib'" in told
    assert "busque keys create --tenant backfill-new" in told

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "backfill", interrupted)
    assert run("--tenant", "backfill-new") == 130
    assert "interrupted; rerun to resume" in capsys.readouterr().err


def test_backfill_without_models_decodes_for_the_renditions_only(app, tmp_path):
    """--no-embeddings and --no-faces: items are stored, catalogued and given renditions, with
    no embedding (a later reindex --recompute adds it from the original)."""
    root = tmp_path / "plain"
    root.mkdir()
    for i in range(3):
        image = Image.new("RGB", (1200, 900), (60 * i, 90, 200 - 60 * i))
        (root / f"p{i}.jpg").write_bytes(jpeg(image))
    tenant = tenant_of(app, "backfill-no-models")
    runtime = Runtime(app.settings)
    report = backfill(
        runtime, tenant, root, collection="plain", embeddings=False, faces=False, progress=False
    )
    assert report["uploaded"] == 3 and report["failed"] == 0, report
    rows, _ = runtime.catalog.list(tenant, collection="plain", limit=10)
    assert len(rows) == 3
    for row in rows:
        thumb = Image.open(io.BytesIO(runtime.objects.get(row["thumbnail_key"])))
        assert max(thumb.size) == app.settings.media.thumbnail_side
        assert runtime.objects.get(row["normalized_key"])[:2] == b"\xff\xd8"
