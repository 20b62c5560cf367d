"""What is checked of a request before its route runs and before its body is read.

1. The key. FastAPI reads a route's body before it runs the route's dependencies (the key check
   among them), so a client without a key could hold a Gateway slot for as long as it takes to
   trickle a body in; here a request that sends a body to a route that wants a key is answered
   401 at once unless its key is valid. The route still checks the key's scopes (the verified
   key is cached, so this costs no second database read).
2. The tenant's request rate (busque.api.rate_limit): 429 `rate_limited`.
3. The tenant's bodies in flight (`quotas.bodies`, per replica): 429 `too_many_uploads`. A body
   holds its slot until its last byte arrives, so a tenant that trickles bodies holds at most that
   many of the Gateway's slots, however many sockets it opens.

Requests without a valid key that send no body go on to their route, which answers 401 itself
or serves a keyless read. Bodies on the paths that carry their own credentials (a signed URL,
DupMedia's token in the body) need no header key; they share one pool of slots
(`quotas.keyless_bodies`), so a keyless trickle cannot fill the Gateway either."""

from __future__ import annotations

from busque.api.auth import Authenticator, key_from_headers
from busque.api.errors import ApiError
from busque.api.limits import answer_error
from busque.api.rate_limit import RateLimiter
from busque.api.slots import TenantSlots
from busque.config import QuotaSettings

BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Routes that take a body without a key in the headers: uploads through a signed URL carry
# their own (and the doors may name more). Every other route wants a key with a body. Keyless
# bodies share `quotas.keyless_bodies` slots per replica, as no tenant is known yet.
KEYLESS_PREFIXES = ("/v1/objects/",)
KEYLESS = "(keyless)"  # the slots' owner for bodies sent without a key


class TenantGate:
    def __init__(
        self,
        app,
        authenticator: Authenticator,
        quotas: QuotaSettings,
        rates: RateLimiter,
        bodies: TenantSlots,
        keyless: tuple[str, ...] = (),
    ):
        self.app = app
        self.auth = authenticator
        self.quotas = quotas
        self.rates = rates
        self.bodies = bodies
        self.keyless = KEYLESS_PREFIXES + tuple(keyless)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if scope["path"].startswith(self.keyless):
            if not _sends_body(headers):
                return await self.app(scope, receive, send)
            return await self._with_body_slot(
                KEYLESS, self.quotas.keyless_bodies, scope, receive, send
            )
        key = key_from_headers(headers)
        principal = await self.auth.principal(key) if key else None
        if principal is None:
            if scope["method"] in BODY_METHODS:
                message = "send a valid API key in X-API-Key or Authorization: Bearer"
                challenge = [(b"www-authenticate", b"Bearer")]
                return await answer_error(
                    send, 401, "unauthorized", message, {}, challenge, path=scope["path"]
                )
            return await self.app(scope, receive, send)
        tenant = principal.tenant_id
        quota = self.quotas.of(principal.tenant_name)
        try:
            await self.rates.admit(tenant, quota)
        except ApiError as refused:
            return await _refuse(send, refused, scope["path"])
        if not _sends_body(headers):
            return await self.app(scope, receive, send)
        return await self._with_body_slot(tenant, quota.bodies, scope, receive, send)

    async def _with_body_slot(self, owner: str, limit: int, scope, receive, send):
        """Run the request holding one of `owner`'s body slots until its body has arrived."""
        try:
            self.bodies.take(owner, limit)
        except ApiError as refused:
            return await _refuse(send, refused, scope["path"])
        arriving = True

        def body_arrived():
            nonlocal arriving
            if arriving:
                arriving = False
                self.bodies.give_back(owner)

        async def receive_body():
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_arrived()
            return message

        try:
            await self.app(scope, receive_body, send)
        finally:
            body_arrived()


def _sends_body(headers: dict[str, str]) -> bool:
    length = headers.get("content-length", "")
    return "transfer-encoding" in headers or (length.isdigit() and int(length) > 0)


async def _refuse(send, refused: ApiError, path: str) -> None:
    extra = [(k.lower().encode(), v.encode()) for k, v in (refused.headers or {}).items()]
    await answer_error(
        send, refused.status, refused.code, refused.message, refused.details, extra, path=path
    )
