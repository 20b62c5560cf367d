"""The ingest job's work, given its services: decode, store renditions, embed, index, find
look-alikes, analyse faces.

Ray-free: the IngestWorker deployment hands in `embed` (the Embedder) and `index` (the Matcher)
as async callables. The original is read once and decoded once (busque.media.render, which the
backfill uses too): the embedder gets that image reduced, the face analyser the image itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image
from pydantic import BaseModel

from busque.config import Settings
from busque.faces.analyze import FaceServices, analyze_media
from busque.media.catalog import Catalog
from busque.media.collections import CollectionStore
from busque.media.matches import breed_of, joined, match_view
from busque.media.render import decode_original, model_input
from busque.models.base import ModelError
from busque.models.embedding.efficientnet import pet_label
from busque.models.embedding.spec import unavailable_reason as embedder_missing
from busque.models.registry import ModelRegistry, ModelSpec, served_by_its_deployment
from busque.storage import ObjectStore


class IngestJobInput(BaseModel):
    media_id: str
    original_key: str
    keys: dict[str, str]
    k: int = 10
    analyze_faces: bool = True  # False when the faces came with the photo (POST /v1/media/sync)
    # The image to decode, embed and analyse when the original is none (a synced video's
    # poster frame, stored where the normalized rendition goes); None: the original.
    source_key: str | None = None


def register(registry: ModelRegistry, settings: Settings) -> None:
    registry.register(
        ModelSpec(
            id="ingest",
            kind="image-ingest",
            backend=settings.embedder.backend,
            factory=served_by_its_deployment,
            input_schema=IngestJobInput,
            deployment="ingest",
            description="Store, normalise, embed and index a photo; POST /v1/ingest runs it.",
            timeout_s=120,
            public=False,
            unavailable=embedder_missing,
        )
    )


@dataclass
class IngestServices:
    objects: ObjectStore
    catalog: Catalog
    embed: Callable[[Image.Image], Awaitable[dict]]  # model_input -> {"vector", "labels"}
    index_add: Callable[..., Awaitable[None]]
    index_search: Callable[..., Awaitable[list[dict]]]
    embedding_model: str
    embedding_version: str
    model_side: int  # the embedder's source side (busque.media.render.model_input)
    collections: CollectionStore  # per-collection options (faces on ingest)
    faces: FaceServices | None = None  # None: this deployment does no face analysis


async def run_ingest(
    job: dict,
    services: IngestServices,
    settings: Settings,
    progress: Callable[[float, str], Awaitable[None]],
) -> dict[str, Any]:
    inputs = job["input"]
    media_id, k = inputs["media_id"], inputs["k"]
    catalog, objects = services.catalog, services.objects
    row = await asyncio.to_thread(catalog.get, media_id, job["tenant_id"])
    if row is None:
        await _remove_renditions(objects, inputs["keys"])  # an earlier attempt's
        raise ModelError("media_not_found", f"media {media_id} was deleted before indexing")
    original = await asyncio.to_thread(
        objects.get, inputs.get("source_key") or inputs["original_key"]
    )
    decoded, images = await asyncio.to_thread(
        decode_original, original, settings, services.model_side, row["sha256"]
    )
    del original  # up to media.max_upload_bytes: not kept while the models run
    keys = {"original": inputs["original_key"], **inputs["keys"]}
    await asyncio.to_thread(objects.put, keys["normalized"], images.normalized, "image/jpeg")
    await asyncio.to_thread(objects.put, keys["thumbnail"], images.thumbnail, "image/webp")
    await progress(40, "stored")

    pixels = await asyncio.to_thread(model_input, decoded.image, services.model_side)
    embedded = await services.embed(pixels)
    if "error" in embedded:  # decoded pixels are ours: this is not the user's bad input
        raise RuntimeError(f"the Embedder could not embed the decoded image: {embedded['error']}")
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
    hits = await asyncio.to_thread(lambda: list(joined(catalog, tenant, found)))
    matches = [
        match_view(rank, match, row)
        | pet_label(row["labels"])
        | {"breed": breed_of(row["labels"], row["metadata"])}
        for rank, (match, row) in enumerate(hits, start=1)
    ]
    await progress(85, "matched")
    faces = None
    if inputs.get("analyze_faces", True):
        faces = await _faces(services, tenant, indexed, decoded)
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


async def _faces(ingest: IngestServices, tenant: str, media: dict, decoded) -> list[dict] | None:
    services = ingest.faces
    if services is None:
        return None
    enabled = await asyncio.to_thread(
        ingest.collections.faces_enabled, tenant, media["collection"], services.settings.on_ingest
    )
    if not enabled:
        return None
    faces = await analyze_media(services, tenant, media, decoded)
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
