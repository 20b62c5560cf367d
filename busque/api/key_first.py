"""Authenticate before reading a request body. FastAPI reads a route's body before it runs the
route's dependencies (the key check among them), so a client without a key could hold a Gateway
slot for as long as it takes to trickle a body in; here a request that sends a body to a route
that wants a key is answered 401 at once unless its key is valid. The route still checks the
key's scopes (the verified key is cached, so this costs no second database read)."""

from __future__ import annotations

from busque.api.auth import Authenticator, key_from_headers
from busque.api.limits import answer_error

BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Routes that take a body without a key: uploads through a signed URL carry their own.
KEYLESS_PREFIXES = ("/v1/objects/",)


class KeyFirstMiddleware:
    def __init__(self, app, authenticator: Authenticator):
        self.app = app
        self.auth = authenticator

    async def __call__(self, scope, receive, send):
        if (
            scope["type"] == "http"
            and scope["method"] in BODY_METHODS
            and scope["path"].startswith("/v1/")
            and not scope["path"].startswith(KEYLESS_PREFIXES)
        ):
            headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
            }
            key = key_from_headers(headers)
            if not key or await self.auth.principal(key) is None:
                message = "send a valid API key in X-API-Key or Authorization: Bearer"
                challenge = [(b"www-authenticate", b"Bearer")]
                return await answer_error(send, 401, "unauthorized", message, {}, challenge)
        return await self.app(scope, receive, send)
