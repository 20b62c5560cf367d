"""The object store interface both backends implement."""

from __future__ import annotations

import mimetypes
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    content_type: str | None
    etag: str | None


def content_type_for(key: str, content_type: str | None) -> str:
    """The content type to store: the caller's, else a guess from the key, else octet-stream."""
    return content_type or mimetypes.guess_type(key)[0] or "application/octet-stream"


class ObjectNotFound(KeyError):
    """``get`` of a key that does not exist."""


class ObjectTooLarge(ValueError):
    """``get`` of an object larger than the caller's ``max_bytes``: nothing of it was kept.
    A presigned PUT carries no size bound, so every reader of an uploaded object caps it."""

    def __init__(self, key: str, size: int, max_bytes: int):
        super().__init__(f"object {key} is {size} bytes; the limit is {max_bytes}")
        self.key, self.size, self.max_bytes = key, size, max_bytes


class ObjectStore(ABC):
    """Keys are validated with ``validate_key`` by every method; tenancy is checked above this."""

    @abstractmethod
    def put(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo: ...

    @abstractmethod
    def put_file(self, key: str, path: Path, content_type: str | None = None) -> ObjectInfo:
        """Upload a file without reading it whole into memory."""

    @abstractmethod
    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        """The object's bytes; ObjectTooLarge, having read at most `max_bytes` + 1 of them,
        when it is larger than `max_bytes`."""

    @abstractmethod
    def get_file(self, key: str, path: Path, max_bytes: int | None = None) -> ObjectInfo:
        """Download the object into the file `path` without holding it in memory (a video);
        ObjectNotFound, or ObjectTooLarge (nothing written) past `max_bytes`."""

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo | None:
        """None when the object does not exist."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """No error when the object does not exist."""

    @abstractmethod
    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, recursively."""

    @abstractmethod
    def presign_get(self, key: str, expires_s: int) -> str:
        """An absolute URL that downloads the object until it expires."""

    @abstractmethod
    def presign_put(self, key: str, expires_s: int, content_type: str | None = None) -> str:
        """An absolute URL that accepts an HTTP PUT of the object's body until it expires."""

    @abstractmethod
    def ping(self) -> None:
        """Raise when the store cannot be reached."""
