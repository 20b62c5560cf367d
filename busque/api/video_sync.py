"""A synced video: DupMedia's package whose `storage_path` is a video (an uploaded .mp4, .mov,
.mkv, ...), recorded as busque's backfill records one. The video is read once into a temporary
file (streamed, at most `media.max_video_bytes`) and checked against the package's hash; its
container, codec, size, duration, fps and a pHash per sampled keyframe go to the media row's
metadata, the first keyframe's pHash stands for it, and its poster frame (the middle frame, as
displayed) is what its ingest job embeds, thumbnails and, when the package brings no faces,
analyses. Faces in the package are stored as sent, their boxes in the video's pixels."""

from __future__ import annotations

import asyncio
import hashlib
import io
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from busque.api.errors import ApiError, not_found
from busque.api.ingest import Accepted
from busque.media.library import CHUNK, inspect_video
from busque.media.video import poster_frame
from busque.storage import InvalidKey, ObjectNotFound, ObjectTooLarge, tenant_key, validate_key

# Videos read at once per Gateway replica: each holds a temporary file and decodes a few frames.
_READING = asyncio.Semaphore(2)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _poster_jpeg(path: Path, side: int) -> bytes:
    frame = poster_frame(path)
    frame.thumbnail((side, side))
    out = io.BytesIO()
    frame.save(out, "JPEG", quality=90)
    return out.getvalue()


def _read(ctx, tenant: str, storage_path: str, sha256: str, path: Path) -> tuple[dict, bytes]:
    """(the video's facts, its poster frame as a JPEG), from the object downloaded to `path`."""
    media = ctx.settings.media
    try:
        validate_key(storage_path, tenant)
        ctx.objects.get_file(storage_path, path, media.max_video_bytes)
    except (InvalidKey, ObjectNotFound):
        raise not_found("object", storage_path) from None
    except ObjectTooLarge:
        raise ApiError(
            413,
            "payload_too_large",
            f"videos are limited to {media.max_video_bytes} bytes",
            {"max_bytes": media.max_video_bytes},
        ) from None
    if _sha256(path) != sha256:
        raise ApiError(422, "hash_mismatch", "the object at storage_path does not have that hash")
    facts = inspect_video(path)
    if facts.get("error"):
        raise ApiError(422, facts["error"], facts["message"])
    return facts, _poster_jpeg(path, media.normalized_side)


@asynccontextmanager
async def video_original(
    ctx, tenant: str, storage_path: str, sha256: str
) -> AsyncIterator[tuple[Accepted, dict]]:
    """What accept_media stores of a synced video (the video itself as the original,
    content-addressed with its own extension, and the poster frame its job decodes) and its
    metadata, while its temporary copy lasts."""
    ext = Path(storage_path).suffix.lower()
    with tempfile.TemporaryDirectory(prefix="busque-video-") as workdir:
        path = Path(workdir) / f"video{ext}"
        async with _READING:
            facts, poster = await asyncio.to_thread(_read, ctx, tenant, storage_path, sha256, path)

        def store(objects, key: str) -> None:
            objects.put_file(key, path, f"video/{ext.lstrip('.')}")

        original = Accepted(
            sha256=sha256,
            phash=facts["phash"],
            width=facts["width"],
            height=facts["height"],
            format=facts["format"],
            size=path.stat().st_size,
            store=store,
            original_key=tenant_key(tenant, "originals", sha256[:2], f"{sha256}{ext}"),
            source=poster,
        )
        metadata = {"kind": "video", **{k: facts[k] for k in ("duration_s", "fps", "codec")}}
        yield original, metadata | {"keyframe_phashes": facts["keyframes"]}
