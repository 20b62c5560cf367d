"""The ingest job's work, given its services: normalise, store, embed, index, find look-alikes.

Ray-free: the IngestWorker deployment hands in `embed` (the Embedder) and `index` (the Matcher)
as async callables; a pipeline could hand in in-process ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from busque.config import MediaSettings
from busque.faces.analyze import FaceServices, analyze_media
from busque.media.catalog import Catalog
from busque.media.normalize import prepare
from busque.models.base import ModelError
from busque.models.embedding.efficientnet import pet_label
from busque.storage import ObjectStore


@dataclass
class IngestServices:
    objects: ObjectStore
    catalog: Catalog
    embed: Callable[[bytes], Awaitable[dict]]  # normalised JPEG -> {"vector", "labels"}
    index_add: Callable[..., Awaitable[None]]
    index_search: Callable[..., Awaitable[list[dict]]]
    embedding_model: str
    embedding_version: str
    faces: FaceServices | None = None  # None: this deployment does no face analysis


async def run_ingest(
    job: dict,
    services: IngestServices,
    settings: MediaSettings,
    progress: Callable[[float, str], Awaitable[None]],
) -> dict[str, Any]:
    inputs = job["input"]
    media_id, k = inputs["media_id"], inputs["k"]
    catalog, objects = services.catalog, services.objects
    row = await asyncio.to_thread(catalog.get, media_id, job["tenant_id"])
    if row is None:
        await _remove_renditions(objects, inputs["keys"])  # an earlier attempt's
        raise ModelError("media_not_found", f"media {media_id} was deleted before indexing")
    original = await asyncio.to_thread(objects.get, inputs["original_key"])
    _, images = await asyncio.to_thread(
        prepare,
        original,
        max_pixels=settings.max_pixels,
        max_side=settings.normalized_side,
        thumb_side=settings.thumbnail_side,
        sha256=row["sha256"],
    )
    keys = {"original": inputs["original_key"], **inputs["keys"]}
    await asyncio.to_thread(objects.put, keys["normalized"], images.normalized, "image/jpeg")
    await asyncio.to_thread(objects.put, keys["thumbnail"], images.thumbnail, "image/webp")
    await progress(40, "stored")

    embedded = await services.embed(images.normalized)
    if "error" in embedded:  # the normalised JPEG is ours: this is not the user's bad input
        raise RuntimeError(f"the Embedder could not read the normalised image: {embedded['error']}")
    vector, labels = embedded["vector"], embedded["labels"]
    await progress(70, "embedded")

    indexed = await asyncio.to_thread(
        catalog.mark_indexed,
        media_id,
        keys=keys,
        embedding=vector,
        embedding_model=services.embedding_model,
        embedding_version=services.embedding_version,
        labels=labels,
    )
    if indexed is None:
        await _remove_renditions(objects, inputs["keys"])
        raise ModelError("media_not_found", f"media {media_id} was deleted while indexing")
    tenant = job["tenant_id"]
    await services.index_add(
        tenant, row["collection"], row["index_id"], vector, row["phash"], row["sha256"]
    )
    found = await services.index_search(
        tenant,
        row["collection"],
        vector=vector,
        phash=row["phash"],
        k=k,
        mode="hybrid",
        exclude_ids=[row["index_id"]],
        sha256=row["sha256"],
    )
    rows = await asyncio.to_thread(catalog.by_index_ids, tenant, [m["media_id"] for m in found])
    matches = [
        {
            "rank": rank,
            "media_id": rows[m["media_id"]]["id"],
            "score": round(m["score"], 6),
            "distance": m["distance"],
            "phash_distance": m["phash_distance"],
            "exact_duplicate": m["exact_duplicate"],
            "near_duplicate": m["near_duplicate"],
            "labels": rows[m["media_id"]]["labels"],
            "metadata": rows[m["media_id"]]["metadata"],
            **pet_label(rows[m["media_id"]]["labels"]),
        }
        for rank, m in enumerate((m for m in found if m["media_id"] in rows), start=1)
    ]
    await progress(85, "matched")
    faces = None
    if inputs.get("analyze_faces", True):
        faces = await _faces(services.faces, tenant, indexed)
    if faces is not None:
        await progress(95, f"{len(faces)} faces")
    duplicate = await asyncio.to_thread(
        catalog.first_with_sha256, job["tenant_id"], row["sha256"], media_id
    )
    return {
        "media_id": media_id,
        "collection": row["collection"],
        "sha256": row["sha256"],
        "labels": labels,
        **pet_label(labels),
        "duplicate_of": duplicate["id"] if duplicate else None,
        "matches": matches,
        "faces": faces,  # None when the collection does not analyse faces
    }


async def _remove_renditions(objects: ObjectStore, keys: dict[str, str]) -> None:
    """The renditions of a media item deleted meanwhile: its DELETE may have run before they
    were written."""
    for key in (keys["normalized"], keys["thumbnail"]):
        await asyncio.to_thread(objects.delete, key)


async def _faces(services: FaceServices | None, tenant: str, media: dict) -> list[dict] | None:
    if services is None:
        return None
    enabled = await asyncio.to_thread(
        services.store.faces_enabled, tenant, media["collection"], services.settings.on_ingest
    )
    if not enabled:
        return None
    faces = await analyze_media(services, tenant, media)
    if faces is None:
        raise ModelError("media_not_found", f"media {media['id']} was deleted while indexing")
    return [public_face(face) for face in faces]


def public_face(face: dict) -> dict:
    return {
        "id": face["id"],
        "box": face["box"],
        "score": round(face["score"], 4),
        "person_id": face["person_id"],
    }
