"""How stored rows look to API clients (one shape for HTTP, SSE, WebSocket and webhooks)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


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
    }
