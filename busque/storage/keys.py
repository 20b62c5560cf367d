"""Object key rules: relative, slash-separated, no tricks, optionally under a tenant prefix."""

from __future__ import annotations

import re

MAX_KEY_BYTES = 1024
_UNSAFE_FILENAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


class InvalidKey(ValueError):
    pass


def validate_key(key: str, tenant: str | None = None) -> str:
    """Return ``key`` if it is a safe object key (under ``tenant/`` when given), else raise."""
    if not isinstance(key, str) or not key:
        raise InvalidKey("empty key")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidKey(f"key longer than {MAX_KEY_BYTES} bytes")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        raise InvalidKey("key contains control characters")
    if "\\" in key:
        raise InvalidKey("key contains a backslash")
    if key.startswith("/"):
        raise InvalidKey("key is an absolute path")
    for segment in key.split("/"):
        if segment == "":
            raise InvalidKey("key has an empty path segment")
        if segment in (".", ".."):
            raise InvalidKey("key has a '.' or '..' segment")
    if tenant is not None:
        if not tenant or "/" in tenant:
            raise InvalidKey("invalid tenant")
        if not key.startswith(f"{tenant}/"):
            raise InvalidKey("key is outside the tenant's prefix")
    return key


def validate_prefix(prefix: str, tenant: str | None = None) -> str:
    """A listing prefix: empty, or a valid key optionally ending in ``/``."""
    if prefix == "" and tenant is None:
        return prefix
    validate_key(prefix[:-1] if prefix.endswith("/") else prefix, tenant=None)
    if tenant is not None and not (prefix + "/").startswith(f"{tenant}/"):
        raise InvalidKey("prefix is outside the tenant's prefix")
    return prefix


def tenant_key(tenant: str, *parts: str) -> str:
    """Join ``parts`` under ``tenant/`` and validate the result."""
    return validate_key("/".join((tenant, *parts)), tenant=tenant)


def safe_filename(name: str) -> str:
    """Reduce a client-supplied filename to one safe path segment."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE_FILENAME_CHARS.sub("_", base).strip("_")[:100]
    if cleaned.strip(".") == "":
        return "file"
    return cleaned
