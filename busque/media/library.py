"""A legacy library on disk, file by file: what a backfill scans, inspects and remembers.

`scan` lists files (recursively) with size and mtime; `inspect_file` reads one, hashing it while
reading (sha256) and, for images, takes its pHash (the ingest's fast hash), size, format and
EXIF capture date and camera; `LibraryStore` remembers which paths were synced (so a rerun skips
unchanged files without reading them) and which media each sha256 already is.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, insert, select, update

from busque.db.engine import readonly
from busque.db.schema import library_files, media
from busque.media.decode import MediaError, image_info
from busque.media.phash import phash_and_variants

IMAGE_EXTENSIONS = {
    ".jpg",
    ".jpeg",
    ".png",
    ".webp",
    ".gif",
    ".bmp",
    ".tif",
    ".tiff",
    ".heic",
    ".heif",
}
VIDEO_EXTENSIONS = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}
CHUNK = 1 << 20


@dataclass(frozen=True)
class LibraryFile:
    path: str  # relative to the library root, with "/" separators
    size: int
    mtime: float
    kind: str  # image | video | other


def path_text(path: str) -> str:
    """The path as valid UTF-8 text, for the catalog and reports: the bytes of a name that is not
    UTF-8 (held by Python as surrogate escapes) become "\\xNN"; any other path is unchanged."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def kind_of(name: str) -> str:
    ext = os.path.splitext(name)[1].lower()
    return "image" if ext in IMAGE_EXTENSIONS else "video" if ext in VIDEO_EXTENSIONS else "other"


def scan(root: str | Path) -> list[LibraryFile]:
    """Every regular file under root (symlinks are not followed), in path order."""
    root = Path(root)
    found = []
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            full = Path(folder) / name
            try:
                stat = full.lstat()
            except OSError:
                continue
            if not full.is_file() or full.is_symlink():
                continue
            rel = full.relative_to(root).as_posix()
            found.append(LibraryFile(rel, stat.st_size, stat.st_mtime, kind_of(name)))
    return found


EXIF_DATETIME_ORIGINAL, EXIF_MAKE, EXIF_MODEL, EXIF_IFD = 0x9003, 0x010F, 0x0110, 0x8769


def inspect_file(path: str | Path, *, max_pixels: int) -> dict:
    """sha256 (streamed) and, for an image, pHash, width, height, format, capture date, camera.
    A file that cannot be read or decoded comes back with `error` and `message` set."""
    path = Path(path)
    kind = kind_of(path.name)
    digest, buffer = hashlib.sha256(), io.BytesIO()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
                if kind == "image":  # a video is only hashed here, never held in memory
                    buffer.write(chunk)
    except OSError as exc:
        return {"error": "unreadable", "message": str(exc)}
    data = buffer.getvalue()
    out: dict = {"sha256": digest.hexdigest(), "error": None, "message": None}
    if kind == "video":
        return out | inspect_video(path)
    if kind != "image":
        return out
    try:
        info = image_info(data, max_pixels=max_pixels)
        phash, variants = phash_and_variants(data, max_pixels=max_pixels)
        out |= {
            "format": info.format,
            "width": info.width,
            "height": info.height,
            "phash": phash,
            "phash_variants": variants.hex(),
            **_exif(data),
        }
    except MediaError as exc:
        out |= {"error": exc.code, "message": str(exc)}
    return out


def inspect_video(path: Path) -> dict:
    """Container, codec, duration, fps, size, and a pHash per sampled keyframe (the first of
    them stands for the video where one hash is needed)."""
    from busque.media.video import keyframe_phashes, probe_video

    try:
        info = probe_video(path)
        keyframes = [h for _, h in keyframe_phashes(path)]
    except MediaError as exc:
        return {"error": exc.code, "message": str(exc)}
    return {
        "format": info.format,
        "width": info.width,
        "height": info.height,
        "phash": keyframes[0],
        "keyframes": keyframes,
        "duration_s": round(info.duration_s, 3),
        "fps": round(info.fps, 3),
        "codec": info.codec,
        "captured_at": None,
        "camera": None,
    }


def _exif(data: bytes) -> dict:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            exif = img.getexif()
            taken = exif.get_ifd(EXIF_IFD).get(EXIF_DATETIME_ORIGINAL) or exif.get(0x0132)
            camera = " ".join(
                str(v).strip("\x00 ") for v in (exif.get(EXIF_MAKE), exif.get(EXIF_MODEL)) if v
            )
    except Exception:  # EXIF is a nicety: a malformed block leaves the fields empty
        return {"captured_at": None, "camera": None}
    return {"captured_at": _exif_time(taken), "camera": camera or None}


def _exif_time(value) -> str | None:
    """EXIF "YYYY:MM:DD HH:MM:SS" -> ISO 8601 (no zone: EXIF has none)."""
    if not value:
        return None
    text = str(value).strip("\x00 ")
    try:
        parsed = time.strptime(text, "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", parsed)


class LibraryStore:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.reader = readonly(engine)

    def synced(self, tenant_id: str, library: str) -> dict[str, tuple[int, float]]:
        """path -> (size, mtime) of the files synced before."""
        with self.reader.connect() as conn:
            rows = conn.execute(
                select(library_files.c.path, library_files.c.size, library_files.c.mtime).where(
                    library_files.c.tenant_id == tenant_id, library_files.c.library == library
                )
            ).all()
        return {r.path: (r.size, r.mtime) for r in rows}

    def media_by_sha256(self, tenant_id: str, hashes: Iterable[str]) -> dict[str, str]:
        """sha256 -> the tenant's earliest media id with those bytes."""
        found: dict[str, str] = {}
        hashes = list(set(hashes))
        with self.reader.connect() as conn:
            for start in range(0, len(hashes), 500):
                rows = conn.execute(
                    select(media.c.sha256, media.c.id)
                    .where(
                        media.c.tenant_id == tenant_id,
                        media.c.sha256.in_(hashes[start : start + 500]),
                    )
                    .order_by(media.c.id.desc())
                ).all()
                found |= {r.sha256: r.id for r in rows}  # descending: the earliest wins
        return found

    def record(
        self,
        tenant_id: str,
        library: str,
        files: Sequence[tuple[LibraryFile, str, str | None]],
        conn=None,
    ) -> None:
        """Remember (file, sha256, media_id) as synced, replacing what a path had; in the
        caller's transaction when `conn` is given."""
        if conn is None:
            with self.engine.begin() as conn:
                return self.record(tenant_id, library, files, conn)
        now = time.time()
        for file, sha256, media_id in files:
            values = {
                "size": file.size,
                "mtime": file.mtime,
                "sha256": sha256,
                "media_id": media_id,
                "synced_at": now,
            }
            changed = conn.execute(
                update(library_files)
                .where(
                    library_files.c.tenant_id == tenant_id,
                    library_files.c.library == library,
                    library_files.c.path == file.path,
                )
                .values(values)
            ).rowcount
            if not changed:
                conn.execute(
                    insert(library_files).values(
                        tenant_id=tenant_id, library=library, path=file.path, **values
                    )
                )

    def aliases(self, tenant_id: str, media_id: str) -> list[str]:
        with self.reader.connect() as conn:
            return list(
                conn.execute(
                    select(library_files.c.path)
                    .where(
                        library_files.c.tenant_id == tenant_id,
                        library_files.c.media_id == media_id,
                    )
                    .order_by(library_files.c.path)
                ).scalars()
            )
