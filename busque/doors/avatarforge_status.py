"""AvatarForge's `ProfilePhotoJobStatus`, read from a busque `avatar` job that came in by its
door: the shape its REST answers, SSE stream, webhook and gRPC messages share.

A job of the door carries the labels door=avatarforge and customer=<id>; its `original` artifact
is the uploaded photo and `image.png` the generated one, both given as presigned URLs. No Ray,
no FastAPI: the Dispatcher renders the webhook body from here (`webhook_body`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from busque.jobs import labels as job_labels
from busque.jobs.store import JobStore
from busque.storage import ObjectStore

DOOR = "avatarforge"
CUSTOMER = "customer"  # the label holding the customer id
WEBHOOK_FORMAT = "avatarforge"
ORIGINAL = "original"  # the uploaded photo, recorded with the job as its input artifact
GENERATED = "image.png"  # the avatar the `avatar` model writes
STATUS = {
    "queued": "PENDING",
    "running": "PROCESSING",
    "succeeded": "DONE",
    "failed": "FAILED",
    "canceled": "FAILED",
}
# The webhook fires on these busque states (DONE or FAILED in AvatarForge's words).
FINAL_STATES = ("succeeded", "failed", "canceled")


def instant(moment: float | None) -> str | None:
    """An Instant as Jackson writes it: ISO 8601 in UTC with a Z."""
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


def is_door_job(job: dict | None, customer_id: str | None = None) -> bool:
    labels = (job or {}).get("labels") or {}
    if labels.get("door") != DOOR:
        return False
    return customer_id is None or labels.get(CUSTOMER) == customer_id


def follows(tenant_id: str, customer_id: str, job_id: str = "") -> Callable[[dict], bool]:
    """Which events say a customer's job (or one of them) changed status: for the SSE stream
    and gRPC's StreamStatus."""
    wanted = {"door": DOOR, CUSTOMER: customer_id}

    def followed(event: dict) -> bool:
        return (
            event["tenant_id"] == tenant_id
            and event["type"] == "job.status"
            and (not job_id or event["job_id"] == job_id)
            and job_labels.matches(event["labels"], wanted)
        )

    return followed


def photo_urls(
    artifacts: list[dict], objects: ObjectStore, ttl_s: int
) -> tuple[str | None, str | None]:
    """(original, generated) presigned; None for a file the job does not have (yet)."""
    keys = {a["name"]: a["object_key"] for a in artifacts}
    return tuple(  # type: ignore[return-value]
        objects.presign_get(keys[name], ttl_s) if name in keys else None
        for name in (ORIGINAL, GENERATED)
    )


def job_status(job: dict, artifacts: list[dict], objects: ObjectStore, ttl_s: int) -> dict:
    """The ProfilePhotoJobStatus record of a job of the door."""
    original, generated = photo_urls(artifacts, objects, ttl_s)
    error = None
    if job["state"] in ("failed", "canceled"):
        error = job.get("error_message") or job["state"]
    return {
        "jobId": job["id"],
        "customerId": job["labels"][CUSTOMER],
        "status": STATUS[job["state"]],
        "originalPhotoUrl": original,
        "generatedPhotoUrl": generated if job["state"] == "succeeded" else None,
        "error": error,
        "createdAt": instant(job["created_at"]),
        "updatedAt": instant(job.get("updated_at") or job["created_at"]),
    }


def read_status(jobs: JobStore, objects: ObjectStore, ttl_s: int, job: dict) -> dict:
    return job_status(job, jobs.artifacts(job["id"]), objects, ttl_s)


def webhook_body(jobs: JobStore, objects: ObjectStore, ttl_s: int) -> Callable[[dict], dict]:
    """The webhook format (busque.jobs.deliverer.PayloadFormat): a delivery -> the job's
    ProfilePhotoJobStatus, its URLs signed when it is sent."""

    def render(delivery: dict) -> dict:
        job = jobs.get(delivery["job_id"], delivery["tenant_id"])
        if job is None:
            raise LookupError(f"job {delivery['job_id']} is gone")
        return read_status(jobs, objects, ttl_s, job)

    return render
