"""The backfill's inspect stage (Ray Data tasks): sha256 while reading, and for images the
pHash, size, format, EXIF capture date and camera (busque.media.library.inspect_file)."""

from __future__ import annotations

import json
import os

from busque.cluster import alive_nodes
from busque.config import Settings
from busque.media.library import inspect_file
from busque.media.sources import open_source

# Every inspected row has every field (Ray Data blocks need one schema); keyframes travel as JSON.
FIELDS = (
    "sha256",
    "format",
    "width",
    "height",
    "phash",
    "phash_variants",  # hex, images only
    "duration_s",
    "fps",
    "codec",
    "captured_at",
    "camera",
    "error",
    "message",
)


_sources: dict[str, object] = {}


def _source(spec: str, settings: dict):
    """The library's source, opened once per worker process."""
    if spec not in _sources:
        _sources[spec] = open_source(spec, Settings.model_validate(settings))
    return _sources[spec]


def inspect_batch(
    batch: dict, spec: str, settings: dict, max_pixels: int, real: dict[str, str]
) -> dict:
    out: dict[str, list] = {key: list(values) for key, values in batch.items()}
    for key in (*FIELDS, "keyframes"):
        out[key] = []
    for path in batch["path"]:
        with _source(spec, settings).local(real.get(str(path), str(path))) as local:
            info = inspect_file(local, max_pixels=max_pixels)
        for key in FIELDS:
            out[key].append(info.get(key))
        out["keyframes"].append(json.dumps(info.get("keyframes") or []))
    return out


def parallelism() -> int:
    """How many inspect tasks run at once: the cores of a single machine (the local Ray declares
    more logical CPUs than it has, see ENVIRONMENT.md), or a cluster's CPUs."""
    import ray

    if len(alive_nodes()) <= 1:
        return os.cpu_count() or 1
    return max(1, int(ray.cluster_resources().get("CPU", 1)))
