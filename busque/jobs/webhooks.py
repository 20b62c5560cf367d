"""Webhook signing (Standard Webhooks), SSRF guard and delivery.

Pure helpers: no database, no Ray. The delivery loop that retries and records
attempts lives elsewhere and uses `deliver` and `payload_for` (its retry delays come from
busque.jobs.backoff).

Signing follows https://www.standardwebhooks.com: the signed content is
``f"{msg_id}.{timestamp}.{body}"``, HMAC-SHA256 keyed with the base64-decoded
part of a ``whsec_...`` secret, sent as ``webhook-signature: v1,<base64>``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import httpx

SECRET_PREFIX = "whsec_"
EXCERPT_CHARS = 200
# Read at most this much of a receiver's answer; only an excerpt is kept.
_MAX_RESPONSE_BYTES = 4096

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class WebhookVerificationError(Exception):
    """A webhook request failed signature or timestamp verification."""


class WebhookTargetRefused(ValueError):
    """A webhook URL points somewhere webhooks may not go."""


# --- signing -----------------------------------------------------------------


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def _secret_key(secret: str) -> bytes:
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error as e:
        raise ValueError("webhook secret is not valid base64 after 'whsec_'") from e


def _signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    return "v1," + _signature(_secret_key(secret), msg_id, timestamp, body)


def signed_headers(
    secret: str, msg_id: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, body),
        "content-type": "application/json",
    }


def verify(secret: str, headers: Mapping[str, str], body: bytes, tolerance_s: float = 300) -> None:
    """Reference receiver check; raises WebhookVerificationError if not genuine."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id = lower.get("webhook-id")
    ts_text = lower.get("webhook-timestamp")
    sig_header = lower.get("webhook-signature")
    if not msg_id or not ts_text or not sig_header:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or signature")
    try:
        timestamp = int(ts_text)
    except ValueError as e:
        raise WebhookVerificationError("invalid webhook-timestamp") from e
    if abs(time.time() - timestamp) > tolerance_s:
        raise WebhookVerificationError("webhook-timestamp outside tolerance")
    try:
        key = _secret_key(secret)
    except ValueError as e:
        raise WebhookVerificationError(str(e)) from e

    expected = _signature(key, msg_id, timestamp, body).encode()
    for candidate in sig_header.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return
    raise WebhookVerificationError("no matching signature")


# --- SSRF guard ----------------------------------------------------------------


# NAT64's local-use prefix (RFC 8215): where it embeds the IPv4 address depends on the
# operator's prefix length, so it is refused whole. The well-known 64:ff9b::/96 is checked by
# the IPv4 address in its last 32 bits.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 form reaches (IPv4-mapped, 6to4, Teredo's client, NAT64)."""
    if addr.ipv4_mapped is not None:
        return "IPv4-mapped", addr.ipv4_mapped
    if addr.sixtofour is not None:
        return "6to4", addr.sixtofour
    if addr.teredo is not None:
        return "Teredo", addr.teredo[1]
    if addr in _NAT64:
        return "NAT64", ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def _why_not_public(addr: IPAddress) -> str | None:
    """What kind of non-public address this is ("private", ...), or None if public."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.is_site_local:  # fec0::/10: deprecated, yet Python calls it global
            return "site-local"
        if addr in _NAT64_LOCAL:
            return "NAT64 local-use"
        # An IPv6 form of an IPv4 address reaches that address: judge it by that address
        # (Python calls some of these forms private or reserved whatever they embed).
        if embedded := _embedded_ipv4(addr):
            form, ipv4 = embedded
            kind = _why_not_public(ipv4)
            return f"{form} {kind}" if kind else None
    checks = [
        ("unspecified", addr.is_unspecified),
        ("loopback", addr.is_loopback),
        ("link-local", addr.is_link_local),
        ("multicast", addr.is_multicast),
        # Before "private": Python 3.11 also counts 240.0.0.0/4 as private.
        ("reserved", addr.is_reserved),
        ("private", addr.is_private),
        ("non-public", not addr.is_global),
    ]
    return next((kind for kind, hit in checks if hit), None)


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as e:
        raise WebhookTargetRefused(f"webhook host {host} does not resolve: {e}") from e
    addrs = {ipaddress.ip_address(info[4][0]) for info in infos}
    if not addrs:
        raise WebhookTargetRefused(f"webhook host {host} does not resolve")
    return sorted(addrs, key=str)


def check_url(url: str, allow_networks: list[str]) -> list[IPAddress]:
    """Raise WebhookTargetRefused unless url is an http(s) URL on public addresses; returns the
    addresses it checked, which the delivery then connects to (never resolving again: a DNS
    answer that changes between the check and the connection cannot redirect it).

    Every address the host resolves to must be public, or lie in allow_networks.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise WebhookTargetRefused(
            f"webhook URL scheme must be http or https, not {parts.scheme!r}"
        )
    if "@" in parts.netloc:
        raise WebhookTargetRefused("webhook URL must not contain credentials (user:pass@)")
    host = parts.hostname
    if not host:
        raise WebhookTargetRefused("webhook URL has no host")
    try:
        port = parts.port
    except ValueError as e:
        raise WebhookTargetRefused(f"webhook URL port is invalid: {e}") from e
    if port is not None and not 1 <= port <= 65535:
        raise WebhookTargetRefused(f"webhook URL port {port} is out of range 1..65535")
    if port is None:
        port = 443 if parts.scheme == "https" else 80

    networks = [ipaddress.ip_network(n, strict=False) for n in allow_networks]
    addresses = _resolve(host, port)
    for addr in addresses:
        kind = _why_not_public(addr)
        if kind is None:
            continue
        check = addr
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            check = addr.ipv4_mapped
        if any(check.version == n.version and check in n for n in networks):
            continue
        article = "an" if kind[0] in "aeiouAEIOU" else "a"
        shown = host if host == str(addr) else f"{host} ({addr})"
        raise WebhookTargetRefused(
            f"webhook host {shown} is {article} {kind} address; allowed networks: {allow_networks}"
        )
    return addresses


def pinned(url: str, addr: IPAddress) -> tuple[str, dict[str, str], dict]:
    """(the URL with its host replaced by `addr`, the Host header, httpx request extensions):
    a request that connects to `addr` while HTTP and TLS still name the host (the certificate
    is verified for the host, through SNI)."""
    parts = urlsplit(url)
    literal = f"[{addr}]" if addr.version == 6 else str(addr)
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    return target, {"host": parts.netloc}, extensions


def validate_url(url: str, allow_networks: list[str]) -> None:
    """Submission-time check; the same check runs again at every delivery."""
    check_url(url, allow_networks)


# --- delivery ------------------------------------------------------------------


@dataclass
class DeliveryOutcome:
    ok: bool
    status: int | None
    error: str | None
    duration_ms: float
    response_excerpt: str


async def deliver(
    client: httpx.AsyncClient,
    url: str,
    secret: str,
    msg_id: str,
    payload: dict,
    allow_networks: list[str],
    timeout_s: float,
) -> DeliveryOutcome:
    """POST one signed webhook to an address `check_url` approved; `timeout_s` bounds the whole
    attempt (connect, send, the answer), however slowly a receiver trickles. Never raises for
    refusals or HTTP/network failures."""
    start = time.monotonic()

    def elapsed_ms() -> float:
        return (time.monotonic() - start) * 1000

    try:
        # DNS may have changed since submission; getaddrinfo blocks, so use a thread.
        addresses = await asyncio.to_thread(check_url, url, allow_networks)
    except WebhookTargetRefused as e:
        return DeliveryOutcome(False, None, f"refused: {e}", elapsed_ms(), "")

    body = json.dumps(payload, separators=(",", ":")).encode()
    target, host_header, extensions = pinned(url, addresses[0])
    headers = signed_headers(secret, msg_id, body) | host_header
    try:
        async with asyncio.timeout(timeout_s):
            async with client.stream(
                "POST",
                target,
                content=body,
                headers=headers,
                timeout=timeout_s,
                # A redirect could point at a private host the check above never saw.
                follow_redirects=False,
                extensions=extensions,
            ) as response:
                raw = b""
                async for chunk in response.aiter_bytes():
                    raw += chunk
                    if len(raw) >= _MAX_RESPONSE_BYTES:
                        break
    except (httpx.TimeoutException, TimeoutError) as e:
        error = f"timeout after {timeout_s}s ({type(e).__name__})"
        return DeliveryOutcome(False, None, error, elapsed_ms(), "")
    except httpx.HTTPError as e:
        # httpx gives some errors no text, e.g. a receiver that closed a kept-alive connection
        detail = str(e) or "the connection was closed or reset before a response"
        return DeliveryOutcome(False, None, f"{type(e).__name__}: {detail}", elapsed_ms(), "")

    status = response.status_code
    excerpt = raw[:_MAX_RESPONSE_BYTES].decode("utf-8", "replace")[:EXCERPT_CHARS]
    if 200 <= status < 300:
        return DeliveryOutcome(True, status, None, elapsed_ms(), excerpt)
    if 300 <= status < 400:
        location = response.headers.get("location", "")
        error = f"HTTP {status}: redirect to {location!r} not followed"
    else:
        error = f"HTTP {status}"
    return DeliveryOutcome(False, status, error, elapsed_ms(), excerpt)


def payload_for(event: dict) -> dict:
    """Standard Webhooks payload for a job event row."""
    created = datetime.fromtimestamp(float(event["created_at"]), tz=UTC)
    return {
        "type": event["type"],
        "timestamp": created.isoformat().replace("+00:00", "Z"),
        "data": {**event["data"], "job_id": event["job_id"], "event_id": event["id"]},
    }
