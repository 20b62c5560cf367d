"""Objects as files under a root directory, with HMAC-signed URLs served by the busque API.

Layout: ``root/data/<key>`` holds the bytes, ``root/meta/<key>.json`` the content type and
etag, ``root/tmp/`` the in-progress writes (same filesystem, so ``os.replace`` is atomic).
A key cannot be both an object and a "directory" of other objects here (``a`` and ``a/b``),
unlike S3; writing the second raises ``InvalidKey``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import quote

from .base import ObjectInfo, ObjectNotFound, ObjectStore, ObjectTooLarge, content_type_for
from .keys import InvalidKey, validate_key, validate_prefix

CHUNK = 1024 * 1024


class SignatureError(PermissionError):
    pass


class TooLarge(ValueError):
    pass


class LocalObjectStore(ObjectStore):
    def __init__(self, root: Path, signing_key: str, public_url: str) -> None:
        if not signing_key:
            raise ValueError("LocalObjectStore needs a non-empty signing_key")
        self.root = Path(root).expanduser().resolve()
        self._data = self.root / "data"
        self._meta = self.root / "meta"
        self._tmp = self.root / "tmp"
        for d in (self._data, self._meta, self._tmp):
            d.mkdir(parents=True, exist_ok=True)
        self._signing_key = signing_key.encode()
        self.public_url = public_url.rstrip("/")

    # -- paths ---------------------------------------------------------------------------

    def _inside(self, base: Path, relative: str) -> Path:
        path = (base / relative).resolve()
        if not path.is_relative_to(base):
            raise InvalidKey("key escapes the store's root")
        return path

    def _data_path(self, key: str) -> Path:
        return self._inside(self._data, validate_key(key))

    def _meta_path(self, key: str) -> Path:
        return self._inside(self._meta, validate_key(key) + ".json")

    # -- writes --------------------------------------------------------------------------

    def put(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo:
        return self.put_stream(key, [data], content_type)

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> ObjectInfo:
        with open(path, "rb") as f:
            return self.put_stream(key, iter(lambda: f.read(CHUNK), b""), content_type)

    def put_stream(
        self,
        key: str,
        chunks: Iterable[bytes],
        content_type: str | None = None,
        max_bytes: int | None = None,
    ) -> ObjectInfo:
        """Write ``chunks`` atomically; past ``max_bytes`` raise TooLarge and keep nothing."""
        target = self._data_path(key)
        meta_target = self._meta_path(key)
        content_type = content_type_for(key, content_type)
        md5 = hashlib.md5(usedforsecurity=False)
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="put-")
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise TooLarge(f"object larger than {max_bytes} bytes")
                    md5.update(chunk)
                    f.write(chunk)
            info = ObjectInfo(key, size, content_type, md5.hexdigest())
            meta = {"content_type": content_type, "etag": info.etag}
            self._place(Path(tmp_name), target)
            self._write_atomic(meta_target, json.dumps(meta).encode())
            return info
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)

    def _place(self, tmp: Path, target: Path) -> None:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir():
                raise InvalidKey("key is a prefix of other objects")
            os.replace(tmp, target)
        except (FileExistsError, NotADirectoryError) as e:
            raise InvalidKey("key collides with an existing object's path") from e

    def _write_atomic(self, target: Path, data: bytes) -> None:
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="meta-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            self._place(Path(tmp_name), target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)

    def delete(self, key: str) -> None:
        for path in (self._data_path(key), self._meta_path(key)):
            with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
                path.unlink()

    # -- reads ---------------------------------------------------------------------------

    def _info(self, key: str, size: int) -> ObjectInfo:
        try:
            meta = json.loads(self._meta_path(key).read_bytes())
        except (FileNotFoundError, NotADirectoryError, ValueError):
            meta = {}
        return ObjectInfo(
            key, size, meta.get("content_type") or content_type_for(key, None), meta.get("etag")
        )

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        try:
            f = open(self._data_path(key), "rb")  # noqa: SIM115 - closed below
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as e:
            raise ObjectNotFound(key) from e
        with f:
            size = os.fstat(f.fileno()).st_size
            if max_bytes is not None and size > max_bytes:
                raise ObjectTooLarge(key, size, max_bytes)
            return f.read()

    def get_file(self, key: str, path: Path, max_bytes: int | None = None) -> ObjectInfo:
        chunks, info = self.open_read(key)
        if max_bytes is not None and info.size > max_bytes:
            chunks.close()
            raise ObjectTooLarge(key, info.size, max_bytes)
        with open(path, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
        return info

    def open_read(self, key: str) -> tuple[Iterator[bytes], ObjectInfo]:
        """Open the object for a streamed download: (chunks, info); the file closes at the end."""
        try:
            f = open(self._data_path(key), "rb")  # noqa: SIM115 - closed by the generator
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as e:
            raise ObjectNotFound(key) from e
        info = self._info(key, os.fstat(f.fileno()).st_size)

        def chunks() -> Iterator[bytes]:
            with f:
                yield from iter(lambda: f.read(CHUNK), b"")

        return chunks(), info

    def stat(self, key: str) -> ObjectInfo | None:
        path = self._data_path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not path.is_file():
            return None
        return self._info(key, st.st_size)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        # Walk only the directory the prefix names, then filter on the full prefix.
        start = self._inside(self._data, prefix.rsplit("/", 1)[0]) if "/" in prefix else self._data
        if not start.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames.sort()
            for name in sorted(filenames):
                key = (Path(dirpath) / name).relative_to(self._data).as_posix()
                if key.startswith(prefix):
                    with contextlib.suppress(FileNotFoundError):
                        yield self._info(key, (Path(dirpath) / name).stat().st_size)

    def ping(self) -> None:
        if not (self._data.is_dir() and os.access(self._tmp, os.W_OK)):
            raise OSError(f"object store root {self.root} is not usable")

    # -- signed URLs ---------------------------------------------------------------------

    def _sign(self, method: str, key: str, expires: int) -> str:
        message = f"{method}\n{key}\n{expires}".encode()
        return hmac.new(self._signing_key, message, hashlib.sha256).hexdigest()

    def _presign(self, method: str, key: str, expires_s: int) -> str:
        validate_key(key)
        expires = int(time.time()) + int(expires_s)
        url = f"{self.public_url}/v1/objects/{quote(key, safe='/')}"
        url += f"?expires={expires}&sig={self._sign(method, key, expires)}"
        return url + ("&method=PUT" if method == "PUT" else "")

    def presign_get(self, key: str, expires_s: int) -> str:
        return self._presign("GET", key, expires_s)

    def presign_put(self, key: str, expires_s: int, content_type: str | None = None) -> str:
        return self._presign("PUT", key, expires_s)

    def verify_signature(self, method: str, key: str, expires: str | int, sig: str) -> None:
        """Accept a URL made by presign_get/presign_put, else raise SignatureError."""
        validate_key(key)
        method = method.upper()
        if method not in ("GET", "PUT"):
            raise SignatureError("invalid signature: unsupported method")
        text = str(expires)
        if not (text.isascii() and text.isdigit() and len(text) <= 12):
            raise SignatureError("invalid signature: malformed expires")
        expected = self._sign(method, key, int(text))
        # Check the signature before expiry, so a forged URL never learns it was "only expired".
        if not (isinstance(sig, str) and sig.isascii() and hmac.compare_digest(expected, sig)):
            raise SignatureError("invalid signature")
        if int(text) < time.time():
            raise SignatureError("expired")
