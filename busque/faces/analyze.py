"""Faces for a media item, end to end: analyse its original, store thumbnails and rows, cluster.

Ray-free: the caller hands in `analyze` (the FaceAnalyzer deployment, or a model in-process) as
an async callable from an object key to faces. Used by the ingest job and the `faces` job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from PIL import Image
from pydantic import BaseModel, Field, model_validator

from busque.config import FaceSettings, Settings
from busque.faces.index import FaceIndex
from busque.faces.people import cluster
from busque.faces.store import FaceStore
from busque.ids import new_id
from busque.media.decode import DecodedImage
from busque.models.faces import unavailable_reason
from busque.models.registry import ModelRegistry, ModelSpec, served_by_its_deployment
from busque.storage import ObjectStore, tenant_key


@dataclass
class FaceServices:
    objects: ObjectStore
    store: FaceStore
    index: FaceIndex
    analyze: Callable[[str], Awaitable[list[dict]]]  # original's object key -> faces
    # A decoded image -> faces in its pixels (the ingest job has the original decoded already)
    analyze_image: Callable[[Image.Image], Awaitable[list[dict]]]
    model: str
    settings: FaceSettings


def in_original_pixels(found: list[dict], original_width: int, seen_width: int) -> list[dict]:
    """Faces found in a reduced copy of a photo, their boxes and landmarks in the original's
    pixels."""
    ratio = original_width / seen_width
    for face in found:
        face["box"] = [round(v * ratio) for v in face["box"]]
        face["landmarks"] = [[round(x * ratio), round(y * ratio)] for x, y in face["landmarks"]]
    return found


async def analyze_media(
    services: FaceServices, tenant_id: str, media: dict, decoded: DecodedImage | None = None
) -> list[dict] | None:
    """Find, store and cluster a media item's faces (replacing any it had), in `decoded` (the
    original as the ingest job decoded it) or else in the original read by its key. Returns its
    faces with their people, or None when the media item was deleted meanwhile."""
    if decoded is None:
        found = await services.analyze(media["original_key"])
    else:
        found = await services.analyze_image(decoded.image)
        in_original_pixels(found, decoded.width, decoded.image.width)
    return await asyncio.to_thread(
        store_faces,
        services.objects,
        services.store,
        services.index,
        services.settings,
        tenant_id,
        media["id"],
        found,
        services.model,
    )


def store_faces(
    objects: ObjectStore,
    store: FaceStore,
    index: FaceIndex,
    settings: FaceSettings,
    tenant_id: str,
    media_id: str,
    found: list[dict],
    model: str,
) -> list[dict] | None:
    """Faces found elsewhere (box, score, embedding, thumbnail JPEG bytes or None) -> stored
    thumbnails and rows replacing the media item's faces, clustered into people. None when the
    media item is gone. Nothing is left half-written."""
    written = upload_thumbnails(objects, tenant_id, found)
    try:
        stored = store.replace_faces(tenant_id, media_id, found, model)
    except BaseException:
        delete_objects(objects, written)
        raise
    if stored is None:
        delete_objects(objects, written)
        return None
    rows, replaced_keys = stored
    delete_objects(objects, replaced_keys)
    return cluster_rows(store, index, settings, tenant_id, rows)


def name_faces(tenant_id: str, found: list[dict]) -> list[str]:
    """Give each face its id and its thumbnail's key (when it has a thumbnail); returns the
    keys."""
    for face in found:
        face["id"] = new_id("face")
        face["thumbnail_key"] = None
        if face.get("thumbnail"):
            face["thumbnail_key"] = tenant_key(tenant_id, "faces", f"{face['id']}.jpg")
    return [f["thumbnail_key"] for f in found if f["thumbnail_key"]]


def put_thumbnails(objects: ObjectStore, found: list[dict]) -> None:
    """Store the thumbnails of faces `name_faces` named."""
    for face in found:
        if face["thumbnail_key"]:
            objects.put(face["thumbnail_key"], face["thumbnail"], "image/jpeg")


def upload_thumbnails(objects: ObjectStore, tenant_id: str, found: list[dict]) -> list[str]:
    """Name the faces and store their thumbnails; returns the keys written, for the caller to
    delete if the rows are not stored after all."""
    keys = name_faces(tenant_id, found)
    put_thumbnails(objects, found)
    return keys


def cluster_rows(
    store: FaceStore, index: FaceIndex, settings: FaceSettings, tenant_id: str, rows: list[dict]
) -> list[dict]:
    """Stored face rows, clustered into people (incrementally); the rows with their person."""
    people = cluster(
        store,
        index,
        tenant_id,
        [row["seq"] for row in rows],
        max_distance=settings.cluster_max_distance,
        min_faces=settings.cluster_min_faces,
    )
    return [{**row, "person_id": people.get(row["seq"])} for row in rows]


class FacesJobInput(BaseModel):
    """Analyse media already in the catalog: listed ids, or a whole collection."""

    media_ids: list[str] | None = Field(None, min_length=1, max_length=1000)
    collection: str | None = Field(None, max_length=100)
    missing_only: bool = Field(False, description="skip media whose faces were analysed before")
    limit: int = Field(1000, ge=1, le=100_000)

    @model_validator(mode="after")
    def _one_scope(self) -> FacesJobInput:
        if self.media_ids is None and self.collection is None:
            raise ValueError("give media_ids or collection")
        return self


async def run_faces_job(
    job: dict, services: FaceServices, progress: Callable[[float, str], Awaitable[None]]
) -> dict:
    spec = FacesJobInput.model_validate(job["input"])
    tenant = job["tenant_id"]
    todo = await asyncio.to_thread(
        services.store.media_to_analyze,
        tenant,
        media_ids=spec.media_ids,
        collection=spec.collection,
        missing_only=spec.missing_only,
        limit=spec.limit,
    )
    results = []
    for done, media in enumerate(todo, start=1):
        faces = await analyze_media(services, tenant, media)
        if faces is not None:  # None: deleted meanwhile
            results.append({"media_id": media["id"], "faces": len(faces)})
        await progress(100 * done / len(todo), f"{done}/{len(todo)} media")
    missing = sorted(set(spec.media_ids or ()) - {m["id"] for m in todo})
    return {
        "analyzed": len(results),
        "faces": sum(r["faces"] for r in results),
        "media": results[:1000],
        "not_found": missing,  # unknown, other tenants' or not yet indexed media ids
    }


def delete_objects(objects: ObjectStore, keys: list[str]) -> None:
    for key in keys:
        objects.delete(key)


def register(registry: ModelRegistry, settings: Settings) -> None:
    registry.register(
        ModelSpec(
            id="faces",
            kind="face-analysis",
            backend=settings.faces.backend,
            factory=served_by_its_deployment,
            input_schema=FacesJobInput,
            deployment="ingest",
            description="Detect, embed and thumbnail the faces of media already in the catalog "
            "(by id or collection), and cluster them into people.",
            timeout_s=3600,
            unavailable=lambda s: unavailable_reason(s.faces.backend),
        )
    )
