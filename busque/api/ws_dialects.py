"""WebSocket dialects: busque's job events as another system's clients read them.

`busquepet` (`/v1/ws?dialect=busquepet`): BusquePet's Go API told every connected client about
every job, with no subscription: `{"type": "job.status", "job_id", "status", "message"}` with
its states `pending -> processing -> completed` (or `failed`), then, after `completed`, `{"type":
"job.result", "job_id", "result": {"job_id", "matches": [{rank, image_id, breed, score,
distance, image_path}], "retrieved_at", "metadata"}}`. Here the client gets its tenant's jobs."""

from __future__ import annotations

from typing import Any

from busque.api.views import iso

BUSQUEPET_STATUS = {
    "queued": "pending",
    "running": "processing",
    "succeeded": "completed",
    "failed": "failed",
    "canceled": "failed",
}
BUSQUEPET_MESSAGE = {
    "pending": "ingestion accepted",
    "processing": "job started",
    "completed": "job completed",
    "failed": "job failed",
}


class BusquePetDialect:
    """Turns a tenant's events into BusquePet's messages. busque writes a job's result before
    its final status; BusquePet sent `completed` first, so a result waits for its status."""

    def __init__(self):
        self.results: dict[str, dict] = {}

    def messages(self, event: dict) -> list[dict[str, Any]]:
        job_id = event["job_id"]
        if event["type"] == "job.result":
            self.results[job_id] = event
            return []
        if event["type"] != "job.status":
            return []
        status = BUSQUEPET_STATUS[event["data"]["status"]]
        error = event["data"].get("error") or {}
        message = error.get("message") or BUSQUEPET_MESSAGE[status]
        out = [{"type": "job.status", "job_id": job_id, "status": status, "message": message}]
        held = self.results.pop(job_id, None)
        if status == "completed" and held is not None:
            out.append({"type": "job.result", "job_id": job_id, "result": _result(held)})
        return out


def _result(event: dict) -> dict[str, Any]:
    result = event["data"]["result"] or {}
    matches = [
        {
            "rank": m["rank"],
            "image_id": m["media_id"],
            "breed": m.get("breed") or "",
            "score": m["score"],
            "distance": m["distance"] if m["distance"] is not None else m["phash_distance"],
            "image_path": "",  # busque's images are behind signed URLs: GET /v1/media/{id}
        }
        for m in result.get("matches") or []
    ]
    return {
        "job_id": event["job_id"],
        "matches": matches,
        "retrieved_at": iso(event["created_at"]),
        "metadata": {"media_id": result.get("media_id"), "breed": result.get("breed")},
    }
