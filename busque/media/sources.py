"""Where a legacy library lives: a local folder, or an S3 prefix (`s3://bucket/prefix`) on the S3
service busque is configured for (`storage.s3_endpoint` and its keys).

A source lists its files (relative path, size, mtime) and hands out a local path to read one: the
folder's own file, or a temporary download for S3 (PyAV and the hashing read files).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from busque.config import Settings
from busque.media.library import LibraryFile, kind_of, scan


class FolderSource:
    on_this_machine = True  # its files are read where the folder is, not from any node

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.name = str(self.root)

    def scan(self) -> list[LibraryFile]:
        return scan(self.root)

    @contextmanager
    def local(self, path: str) -> Iterator[Path]:
        yield self.root / path


class S3Source:
    on_this_machine = False

    def __init__(self, url: str, settings: Settings):
        from busque.storage.s3 import S3ObjectStore

        parts = urlsplit(url)
        self.bucket, self.prefix = parts.netloc, parts.path.strip("/")
        if not self.bucket:
            raise ValueError(f"{url!r}: use s3://bucket/prefix")
        cfg = settings.storage
        self.client = S3ObjectStore(
            cfg.s3_endpoint,
            cfg.s3_access_key,
            cfg.s3_secret_key,
            self.bucket,
            secure=cfg.s3_secure,
            region=cfg.s3_region,
        ).client
        self.name = url

    def _key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def scan(self) -> list[LibraryFile]:
        start = f"{self.prefix}/" if self.prefix else ""
        found = []
        for item in self.client.list_objects(self.bucket, prefix=start, recursive=True):
            if item.is_dir:
                continue
            path = item.object_name[len(start) :]
            mtime = item.last_modified.timestamp() if item.last_modified else 0.0
            found.append(LibraryFile(path, item.size, mtime, kind_of(path)))
        return sorted(found, key=lambda f: f.path)

    @contextmanager
    def local(self, path: str) -> Iterator[Path]:
        handle, name = tempfile.mkstemp(suffix=Path(path).suffix)
        os.close(handle)
        try:
            self.client.fget_object(self.bucket, self._key(path), name)
            yield Path(name)
        finally:
            os.unlink(name)


def open_source(spec: str | Path, settings: Settings):
    """`s3://bucket/prefix` or a folder path."""
    if str(spec).startswith("s3://"):
        return S3Source(str(spec), settings)
    return FolderSource(spec)
