"""How stored rows look to API clients (one shape for HTTP, SSE, WebSocket and webhooks)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from busque.api.errors import ApiError
from busque.media.phash import int64_to_hex


def parse_iso(value: str | None, name: str) -> datetime | None:
    """A query's ISO-8601 date or time ("Z" taken as UTC), as given (naive without an offset);
    422 for anything else."""
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(
            422, "invalid_request", f"{name} must be an ISO-8601 date or time, e.g. 2024-05-31"
        ) from None


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def job_view(job: dict) -> dict[str, Any]:
    hook = job.get("webhook")
    error = None
    if job["error_code"] and job["state"] != "succeeded":
        error = {"code": job["error_code"], "message": job["error_message"]}
    return {
        "id": job["id"],
        "object": "job",
        "model": job["model"],
        "status": job["state"],
        "progress": job["progress"],
        "input": job["input"],
        "params": job["params"],
        "priority": job["priority"],
        "attempts": job["attempt"],
        "max_attempts": job["max_attempts"],
        "cancel_requested": bool(job["cancel_requested"]),
        "result": job.get("result"),
        "error": error,
        "webhook": {"url": hook["url"], "events": hook.get("events")} if hook else None,
        "labels": job.get("labels") or {},
        "created_at": iso(job["created_at"]),
        "started_at": iso(job.get("started_at")),
        "finished_at": iso(job.get("finished_at")),
        "updated_at": iso(job["updated_at"]),
    }


def event_view(event: dict) -> dict[str, Any]:
    return {
        "id": event["id"],
        "type": event["type"],
        "job_id": event["job_id"],
        "attempt": event["attempt"],
        "created_at": iso(event["created_at"]),
        "data": event["data"],
        "labels": event.get("labels") or {},
    }


def media_view(ctx, row: dict) -> dict:
    """A catalog row; an indexed one with signed URLs of its image and thumbnail."""
    ttl = ctx.settings.storage.url_ttl_s
    urls = {}
    if row["state"] in ("indexed", "trashed"):
        urls = {
            "image_url": ctx.objects.presign_get(row["normalized_key"], ttl),
            "thumbnail_url": ctx.objects.presign_get(row["thumbnail_key"], ttl),
        }
    return {
        "id": row["id"],
        "object": "media",
        "collection": row["collection"],
        "status": row["state"],
        "sha256": row["sha256"],
        "phash": int64_to_hex(row["phash"]),
        "width": row["width"],
        "height": row["height"],
        "format": row["format"],
        "bytes": row["bytes"],
        "metadata": row["metadata"],
        "labels": row["labels"],
        "embedding_model": row["embedding_model"],
        "created_at": iso(row["created_at"]),
        "indexed_at": iso(row["indexed_at"]),
        "trashed_at": iso(row.get("trashed_at")),
        "resolution_id": row.get("resolution_id"),
        **urls,
    }


def face_view(ctx, face: dict) -> dict:
    """A face row, with a signed URL of its thumbnail when it has one."""
    return {
        "id": face["id"],
        "object": "face",
        "media_id": face["media_id"],
        "box": face["box"],
        "score": round(face["score"], 4),
        "person_id": face["person_id"],
        "thumbnail_url": ctx.objects.presign_get(
            face["thumbnail_key"], ctx.settings.storage.url_ttl_s
        )
        if face.get("thumbnail_key")
        else None,
    }
