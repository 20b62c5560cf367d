"""The webhooks busque sends, for the OpenAPI document's `webhooks` section (documentation
only: busque.jobs.outbox delivers them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Header

from busque.api.schemas.jobs import WebhookPayload

EVENTS = {
    "job.status": "the job changed state (queued, running, succeeded, failed, canceled)",
    "job.result": "the job succeeded: `data.result` is its result",
    "job.progress": "the job reported progress (`data.progress`, 0 to 1); ask for it in "
    "`webhook.events`",
    "job.output": "the job streamed output (tokens, previews); ask for it in `webhook.events`",
}

SIGNING = """Signed as [Standard Webhooks](https://www.standardwebhooks.com): the signature is
HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}` keyed with the base64 part of the
`whsec_` secret (the job's `webhook.secret`, else the tenant's: `GET /v1/me`), sent as
`webhook-signature: v1,<base64>`. Verify it and refuse timestamps older than 5 minutes
(`busque.client.verify_webhook` does both). Any 2xx answer acknowledges the delivery; anything
else, or no answer, is retried with backoff, and every attempt is in
`GET /v1/jobs/{id}/webhooks`. `webhook-id` is the same on retries: use it to deduplicate."""


def declare(webhooks: APIRouter) -> None:
    for name, what in EVENTS.items():
        webhooks.add_api_route(
            name,
            _receiver,
            methods=["POST"],
            summary=what[0].upper() + what[1:],
            description=SIGNING,
            name=name,
            responses={200: {"description": "Delivered (any 2xx)"}},
        )


async def _receiver(
    payload: Annotated[WebhookPayload, Body()],
    webhook_id: Annotated[str, Header(description="the delivery's id (the same on retries)")],
    webhook_timestamp: Annotated[str, Header(description="Unix seconds when it was signed")],
    webhook_signature: Annotated[str, Header(description="`v1,<base64 HMAC-SHA256>`")],
) -> None:
    """What a receiver gets (never called: webhooks are sent, not served)."""
