"""Objects in an S3 bucket through the minio client (MinIO, SeaweedFS, AWS, ...)."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.error import S3Error, ServerError

from .base import ObjectInfo, ObjectNotFound, ObjectStore, ObjectTooLarge, content_type_for
from .keys import validate_key, validate_prefix

_MISSING_CODES = {"NoSuchKey", "NotFound", "ResourceNotFound", "NoSuchObject"}
_BUCKET_EXISTS_CODES = {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}


# S3 answers meaning "not now" (throttled, overloaded, failing inside), not "never".
_UNAVAILABLE_CODES = {"ServiceUnavailable", "SlowDown", "InternalError", "RequestTimeout"}


def storage_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the object store cannot be reached now (down, unreachable, 5xx), not
    that the request was wrong: worth a 503."""
    if isinstance(exc, urllib3.exceptions.HTTPError | ServerError | ConnectionError):
        return True
    return isinstance(exc, S3Error) and exc.code in _UNAVAILABLE_CODES


def _etag(value: str | None) -> str | None:
    return value.strip('"') if value else None


class S3ObjectStore(ObjectStore):
    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = False,
        region: str | None = None,
    ) -> None:
        if "://" in endpoint:  # accept "http(s)://host:port" too; minio wants host:port
            parts = urlsplit(endpoint)
            endpoint, secure = parts.netloc, parts.scheme == "https"
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=10, read=120),
            maxsize=16,
            retries=urllib3.Retry(
                total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]
            ),
        )
        self.client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=http,
        )
        self.bucket = bucket
        self._bucket_ready = False
        self._lock = threading.Lock()

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        with self._lock:
            if not self._bucket_ready and not self.client.bucket_exists(self.bucket):
                try:
                    self.client.make_bucket(self.bucket)
                except S3Error as e:  # someone else created it meanwhile: fine
                    if e.code not in _BUCKET_EXISTS_CODES:
                        raise
            self._bucket_ready = True

    def put(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo:
        validate_key(key)
        self._ensure_bucket()
        content_type = content_type_for(key, content_type)
        result = self.client.put_object(
            self.bucket, key, io.BytesIO(data), len(data), content_type=content_type
        )
        return ObjectInfo(key, len(data), content_type, _etag(result.etag))

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> ObjectInfo:
        validate_key(key)
        self._ensure_bucket()
        content_type = content_type_for(key, content_type)
        # fput_object streams from the file, as a multipart upload past 5 MiB parts.
        result = self.client.fput_object(self.bucket, key, str(path), content_type=content_type)
        return ObjectInfo(key, Path(path).stat().st_size, content_type, _etag(result.etag))

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        validate_key(key)
        self._ensure_bucket()
        try:
            response = self.client.get_object(self.bucket, key)
        except S3Error as e:
            if e.code in _MISSING_CODES:
                raise ObjectNotFound(key) from e
            raise
        try:
            if max_bytes is None:
                return response.read()
            size = int(response.headers.get("content-length") or -1)
            if size > max_bytes:
                raise ObjectTooLarge(key, size, max_bytes)
            data = response.read(max_bytes + 1)  # whatever the header said
            if len(data) > max_bytes:
                raise ObjectTooLarge(key, max(size, len(data)), max_bytes)
            return data
        finally:
            response.close()
            response.release_conn()

    def get_file(self, key: str, path: Path, max_bytes: int | None = None) -> ObjectInfo:
        info = self.stat(key)
        if info is None:
            raise ObjectNotFound(key)
        if max_bytes is not None and info.size > max_bytes:
            raise ObjectTooLarge(key, info.size, max_bytes)
        try:  # streamed into a part file beside `path`, then renamed
            self.client.fget_object(self.bucket, key, str(path))
        except S3Error as e:
            if e.code in _MISSING_CODES:
                raise ObjectNotFound(key) from e
            raise
        size = Path(path).stat().st_size
        if max_bytes is not None and size > max_bytes:  # replaced meanwhile by a larger one
            Path(path).unlink()
            raise ObjectTooLarge(key, size, max_bytes)
        return ObjectInfo(key, size, info.content_type, info.etag)

    def stat(self, key: str) -> ObjectInfo | None:
        validate_key(key)
        self._ensure_bucket()
        try:
            obj = self.client.stat_object(self.bucket, key)
        except S3Error as e:
            if e.code in _MISSING_CODES:
                return None
            raise
        return ObjectInfo(key, obj.size or 0, obj.content_type, _etag(obj.etag))

    def delete(self, key: str) -> None:
        validate_key(key)
        self._ensure_bucket()
        self.client.remove_object(self.bucket, key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Listing does not return content types: ``content_type`` is None here; stat has it."""
        validate_prefix(prefix)
        self._ensure_bucket()
        for obj in self.client.list_objects(self.bucket, prefix=prefix or None, recursive=True):
            if not obj.is_dir:
                yield ObjectInfo(obj.object_name, obj.size or 0, None, _etag(obj.etag))

    def presign_get(self, key: str, expires_s: int) -> str:
        validate_key(key)
        self._ensure_bucket()
        return self.client.presigned_get_object(
            self.bucket, key, expires=timedelta(seconds=expires_s)
        )

    def presign_put(self, key: str, expires_s: int, content_type: str | None = None) -> str:
        """S3 presigned PUTs do not bind a content type; the uploader's header is stored."""
        validate_key(key)
        self._ensure_bucket()
        return self.client.presigned_put_object(
            self.bucket, key, expires=timedelta(seconds=expires_s)
        )

    def ping(self) -> None:
        self._bucket_ready = False
        self._ensure_bucket()
