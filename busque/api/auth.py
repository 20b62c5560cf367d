"""API-key authentication (X-API-Key or Authorization: Bearer) and scope checks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from busque.api.errors import ApiError
from busque.auth.keys import KeyStore, Principal


class Authenticator:
    """Verifies keys against the database, trusting a verified key for `cache_s` seconds
    (so a revoked key stops working within that time)."""

    def __init__(self, keys: KeyStore, cache_s: float):
        self.keys = keys
        self.cache_s = cache_s
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def principal(self, key: str) -> Principal | None:
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit and hit[0] > now:
            return hit[1]
        principal = await asyncio.to_thread(self.keys.verify, key)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (now + self.cache_s, principal)
        return principal

    async def authenticate(self, headers: Mapping[str, str], query_key: str | None = None):
        key = key_from_headers(headers) or query_key
        if not key:
            raise ApiError(
                401,
                "unauthorized",
                "send an API key in X-API-Key or Authorization: Bearer",
                headers={"WWW-Authenticate": "Bearer"},
            )
        principal = await self.principal(key)
        if principal is None:
            raise ApiError(
                401,
                "unauthorized",
                "invalid or revoked API key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return principal


def key_from_headers(headers: Mapping[str, str]) -> str | None:
    if key := headers.get("x-api-key"):
        return key.strip()
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


# Declared for the OpenAPI document (Swagger's Authorize sends them); the key is read from the
# headers by Authenticator either way.
API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key")
BEARER = HTTPBearer(auto_error=False, description="the same API key as a Bearer token")


def require(scope: str):
    """A FastAPI dependency: the caller's Principal, which must hold `scope`."""

    async def dependency(
        request: Request,
        _key: str | None = Security(API_KEY),
        _bearer: HTTPAuthorizationCredentials | None = Security(BEARER),
    ) -> Principal:
        principal = await request.app.state.ctx.auth.authenticate(request.headers)
        if not principal.allows(scope):
            raise ApiError(403, "forbidden", f"this API key lacks the {scope!r} scope")
        return principal

    return dependency
