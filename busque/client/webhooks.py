"""Checking a webhook busque sent, in the receiver (Standard Webhooks,
https://www.standardwebhooks.com): the signature is HMAC-SHA256, keyed with the base64 part of
the `whsec_...` secret, over `{webhook-id}.{webhook-timestamp}.{body}`, sent as
`webhook-signature: v1,<base64>` (several, space-separated, while a secret rotates)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from busque.client.errors import WebhookVerificationError

PREFIX = "whsec_"


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    tolerance_s: float = 300,
    *,
    now: float | None = None,
) -> dict[str, Any]:
    """The webhook's payload (`{"type", "timestamp", "data"}`) if `headers` and the raw `body`
    were signed with `secret` within `tolerance_s` seconds of now; WebhookVerificationError
    otherwise. Pass the body exactly as received (before any JSON parsing)."""
    raw = body.encode() if isinstance(body, str) else bytes(body)
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id = lower.get("webhook-id")
    stamp = lower.get("webhook-timestamp")
    signatures = lower.get("webhook-signature")
    if not (msg_id and stamp and signatures):
        raise WebhookVerificationError(
            "missing webhook-id, webhook-timestamp or webhook-signature header"
        )
    if not (stamp.isascii() and stamp.isdigit()):
        raise WebhookVerificationError("webhook-timestamp is not a number of seconds")
    timestamp = int(stamp)
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        raise WebhookVerificationError("webhook-timestamp is too old or too far in the future")
    try:
        key = base64.b64decode(secret.removeprefix(PREFIX), validate=True)
    except binascii.Error:
        raise WebhookVerificationError("the secret is not whsec_ followed by base64") from None
    signed = f"{msg_id}.{timestamp}.".encode() + raw
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            try:
                return json.loads(raw)
            except ValueError:
                raise WebhookVerificationError("the signed body is not JSON") from None
    raise WebhookVerificationError("no webhook-signature matches")
