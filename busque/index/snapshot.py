"""Versioned snapshots of a HybridIndex in the object store.

Layout under ``_index/{tenant}/{collection}/``:

- ``{version}/vectors.faiss``, ``{version}/phash.npy``, ``{version}/meta.json``: one snapshot.
  ``meta.json`` holds the ids, the sha256 map, the index configuration and ``last_seq``, the
  catalog sequence number the snapshot includes (replay the catalog after it).
- ``manifest.json``: ``{"version", "last_seq", "files": {name: {size, sha256}}, ...}``, written
  last with a single PUT (atomic in both stores), so a reader that reads the manifest and
  then the version it names never sees a half-written snapshot.

Versions sort by name (UTC milliseconds then a random suffix), newest last. ``prune`` keeps
the newest ``keep`` versions and never the one the manifest names.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time

from ..storage.base import ObjectNotFound, ObjectStore
from ..storage.keys import InvalidKey, validate_key
from .hybrid import HybridIndex

PREFIX = "_index"
FILES = ("vectors.faiss", "phash.npy", "meta.json")


class SnapshotError(RuntimeError):
    """A snapshot that is missing a file or fails its checksum."""


def _base(tenant: str, collection: str) -> str:
    for name, value in (("tenant", tenant), ("collection", collection)):
        if not value or "/" in value or value in (".", ".."):
            raise InvalidKey(f"invalid {name} {value!r}")
    return validate_key(f"{PREFIX}/{tenant}/{collection}")


def manifest_key(tenant: str, collection: str) -> str:
    return f"{_base(tenant, collection)}/manifest.json"


def new_version() -> str:
    return f"{int(time.time() * 1000):013d}-{secrets.token_hex(4)}"


def save(
    store: ObjectStore,
    tenant: str,
    collection: str,
    index: HybridIndex,
    last_seq: int,
    keep: int | None = None,
) -> str:
    """Write a new snapshot, point the manifest at it, return its version.

    With ``keep`` set, older versions beyond the newest ``keep`` are pruned afterwards.
    """
    base = _base(tenant, collection)
    version = new_version()
    parts = index.to_parts()
    meta = json.loads(parts["meta.json"])
    meta.update(
        {"tenant": tenant, "collection": collection, "version": version, "last_seq": last_seq}
    )
    parts["meta.json"] = json.dumps(meta).encode()
    files = {}
    for name in FILES:
        data = parts[name]
        store.put(f"{base}/{version}/{name}", data, content_type="application/octet-stream")
        files[name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest = {
        "format": 1,
        "version": version,
        "last_seq": int(last_seq),
        "count": len(index),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": files,
    }
    store.put(f"{base}/manifest.json", json.dumps(manifest).encode(), "application/json")
    if keep is not None:
        prune(store, tenant, collection, keep)
    return version


def read_manifest(store: ObjectStore, tenant: str, collection: str) -> dict | None:
    try:
        return json.loads(store.get(manifest_key(tenant, collection)))
    except ObjectNotFound:
        return None


def load(store: ObjectStore, tenant: str, collection: str) -> tuple[HybridIndex, int] | None:
    """The snapshot the manifest names and its ``last_seq``; None when there is none."""
    manifest = read_manifest(store, tenant, collection)
    if manifest is None:
        return None
    base = _base(tenant, collection)
    version = manifest["version"]
    parts = {}
    for name in FILES:
        key = f"{base}/{version}/{name}"
        try:
            data = store.get(key)
        except ObjectNotFound as e:
            raise SnapshotError(f"snapshot {version} lacks {name}") from e
        expect = manifest["files"][name]
        if len(data) != expect["size"] or hashlib.sha256(data).hexdigest() != expect["sha256"]:
            raise SnapshotError(f"snapshot {version}: {name} fails its checksum")
        parts[name] = data
    meta = json.loads(parts["meta.json"])
    return HybridIndex.from_parts(parts, meta), int(meta["last_seq"])


def versions(store: ObjectStore, tenant: str, collection: str) -> list[str]:
    """The stored versions, oldest first."""
    base = _base(tenant, collection) + "/"
    found = set()
    for info in store.list(base):
        rest = info.key[len(base) :]
        if "/" in rest:
            found.add(rest.split("/", 1)[0])
    return sorted(found)


def prune(store: ObjectStore, tenant: str, collection: str, keep: int = 3) -> list[str]:
    """Delete all but the newest ``keep`` versions (never the manifest's); returns the deleted."""
    if keep < 1:
        raise ValueError("keep at least one version")
    manifest = read_manifest(store, tenant, collection)
    current = manifest["version"] if manifest else None
    all_versions = versions(store, tenant, collection)
    doomed = [v for v in all_versions[:-keep] if v != current]
    base = _base(tenant, collection)
    for version in doomed:
        for info in list(store.list(f"{base}/{version}/")):
            store.delete(info.key)
    return doomed
