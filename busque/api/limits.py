"""Refuse request bodies over the configured size, declared or streamed, with 413, and bodies
that do not arrive within the configured time (a client trickling a byte every few seconds
holds a request slot for ever otherwise), with 408.

A refused body is read and dropped, within bounds, before the answer: a server that closes with
unread bytes in its socket sends a TCP reset, and a proxy in between (Ray's HAProxy) may lose the
413 it was relaying (nginx's "lingering close" for the same reason)."""

from __future__ import annotations

import asyncio
import json

from starlette.exceptions import HTTPException

from busque.api.openai_errors import error_body, is_openai_path

DRAIN_BYTES = 64 * 2**20  # beyond this much unread body, the reset is the cheaper evil
DRAIN_S = 5.0


class BodyTooLarge(HTTPException):
    """An HTTPException, so FastAPI's body parsing passes it on as a 413 (not a 400)."""

    def __init__(self, max_bytes: int):
        super().__init__(413, f"request bodies are limited to {max_bytes} bytes")
        self.details = {"max_bytes": max_bytes}


class BodyTooSlow(HTTPException):
    def __init__(self, timeout_s: float):
        super().__init__(408, f"the request body did not arrive within {timeout_s} s")


class BodyLimitMiddleware:
    def __init__(self, app, max_bytes: int, timeout_s: float):
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            if int(declared) <= self.max_bytes + DRAIN_BYTES:
                await discard_body(receive)
            return await self._refuse(send, scope["path"])
        seen = 0
        started = False
        body_done = False
        deadline = asyncio.get_running_loop().time() + self.timeout_s

        async def limited_receive():
            nonlocal seen, body_done
            if body_done:  # after the body, receive() waits for a disconnect: no deadline
                return await receive()
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), max(remaining, 0))
            except TimeoutError:
                raise BodyTooSlow(self.timeout_s) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
                body_done = not message.get("more_body", False)
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await discard_body(receive)
                await self._refuse(send, scope["path"])
        except BodyTooSlow as exc:
            if not started:
                await answer_error(send, 408, "request_timeout", exc.detail, {}, path=scope["path"])

    async def _refuse(self, send, path: str):
        message = f"request bodies are limited to {self.max_bytes} bytes"
        details = {"max_bytes": self.max_bytes}
        await answer_error(send, 413, "payload_too_large", message, details, path=path)


async def discard_body(receive, max_bytes: int = DRAIN_BYTES, timeout_s: float = DRAIN_S):
    """Read what is left of a request's body into nothing: at most max_bytes, for at most
    timeout_s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    dropped = 0
    while dropped <= max_bytes:
        try:
            message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0))
        except TimeoutError:
            return
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        dropped += len(message.get("body", b""))


async def answer_error(
    send, status: int, code: str, message: str, details: dict, extra_headers=(), path: str = ""
) -> None:
    """An error envelope from an ASGI middleware, closing the connection (the rest of the body
    is not read); OpenAI's shape on the OpenAI-compatible paths."""
    if is_openai_path(path):
        body = json.dumps(error_body(status, code, message)).encode()
    else:
        body = json.dumps({"error": {"code": code, "message": message, "details": details}})
        body = body.encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *extra_headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
