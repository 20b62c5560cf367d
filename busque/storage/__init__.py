"""busque's object store: local files or S3, behind one interface."""

from __future__ import annotations

from pathlib import Path

from ..config import StorageSettings
from .base import ObjectInfo, ObjectNotFound, ObjectStore, ObjectTooLarge
from .keys import InvalidKey, safe_filename, tenant_key, validate_key, validate_prefix
from .local import LocalObjectStore, SignatureError, TooLarge
from .s3 import S3ObjectStore, storage_unavailable

__all__ = [
    "InvalidKey",
    "LocalObjectStore",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "ObjectTooLarge",
    "S3ObjectStore",
    "SignatureError",
    "TooLarge",
    "open_object_store",
    "safe_filename",
    "storage_unavailable",
    "tenant_key",
    "validate_key",
    "validate_prefix",
]


def open_object_store(settings: StorageSettings, public_url: str) -> ObjectStore:
    """The backend ``settings.backend`` names; ``public_url`` is the API base for local URLs."""
    if settings.backend == "s3":
        return S3ObjectStore(
            settings.s3_endpoint,
            settings.s3_access_key,
            settings.s3_secret_key,
            settings.s3_bucket,
            secure=settings.s3_secure,
            region=settings.s3_region,
        )
    if settings.local_dir is None:
        raise ValueError("storage.local_dir is not set (Settings fills it from home)")
    if not settings.signing_key:
        raise ValueError("storage.signing_key is empty: call Settings.ensure_secrets() first")
    return LocalObjectStore(Path(settings.local_dir), settings.signing_key, public_url)
