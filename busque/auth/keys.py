"""Tenants and API keys. A key is `bq_<id>_<secret>`; only sha256(secret) is stored.

The secret is 32 random bytes, so a fast hash is enough (no password stretching is needed for
high-entropy secrets) and verification stays cheap on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from busque.db.engine import readonly
from busque.db.event_numbers import create_numbering
from busque.db.schema import api_keys, tenants
from busque.ids import new_id
from busque.jobs.webhooks import new_secret

SCOPES = (
    "jobs:read",
    "jobs:write",
    "objects:read",
    "objects:write",
    "media:read",
    "media:write",
    "admin",
)
DEFAULT_SCOPES = SCOPES[:-1]
TENANT_ID_PREFIX = "ten_"  # new_id("ten")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant and what its key may do."""

    tenant_id: str
    key_id: str
    scopes: frozenset[str]
    tenant_name: str = ""

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


@dataclass(frozen=True)
class CreatedKey:
    key: str  # shown once, never stored
    key_id: str
    tenant_id: str
    scopes: tuple[str, ...]


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(key: str) -> tuple[str, str] | None:
    parts = key.strip().split("_")
    if len(parts) != 3 or parts[0] != "bq" or not parts[1] or not parts[2]:
        return None
    return f"key_{parts[1]}", parts[2]


def check_tenant_name(name: str) -> None:
    """ValueError unless the name can name a new tenant: 1-100 printable characters, and not
    one that `--tenant` options would take for a tenant id."""
    if not name.strip():
        raise ValueError("a tenant name cannot be empty")
    if len(name) > 100:
        raise ValueError(f"a tenant name has at most 100 characters, not {len(name)}")
    if not name.isprintable():
        raise ValueError(f"a tenant name cannot hold control characters: {name!r}")
    if name.startswith(TENANT_ID_PREFIX):
        raise ValueError(f"a tenant name cannot start with {TENANT_ID_PREFIX!r} (tenant ids do)")


class KeyStore:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.reader = readonly(engine)

    def ensure_tenant(self, name: str) -> str:
        """The id of the tenant with this name, creating it if needed (ValueError for a name
        that check_tenant_name refuses)."""
        with self.reader.connect() as conn:
            found = conn.execute(select(tenants.c.id).where(tenants.c.name == name)).scalar()
        if found:
            return found
        check_tenant_name(name)
        tenant_id = new_id("ten")
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(tenants).values(
                        id=tenant_id, name=name, webhook_secret=new_secret(), created_at=time.time()
                    )
                )
                create_numbering(conn, tenant_id)
        except IntegrityError:  # created concurrently
            with self.reader.connect() as conn:
                return conn.execute(select(tenants.c.id).where(tenants.c.name == name)).scalar_one()
        return tenant_id

    def tenant_id(self, name: str) -> str | None:
        with self.reader.connect() as conn:
            return conn.execute(select(tenants.c.id).where(tenants.c.name == name)).scalar()

    def tenant(self, tenant_id: str) -> dict | None:
        with self.reader.connect() as conn:
            row = conn.execute(select(tenants).where(tenants.c.id == tenant_id)).first()
        return row._asdict() if row else None

    def create(self, tenant_name: str, name: str, scopes: tuple[str, ...] = DEFAULT_SCOPES):
        if not scopes:
            raise ValueError(f"no scopes given; known: {list(SCOPES)}")
        unknown = set(scopes) - set(SCOPES)
        if unknown:
            raise ValueError(f"unknown scopes {sorted(unknown)}; known: {list(SCOPES)}")
        tenant_id = self.ensure_tenant(tenant_name)
        public = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32).replace("_", "-")
        key_id = f"key_{public}"
        with self.engine.begin() as conn:
            conn.execute(
                insert(api_keys).values(
                    id=key_id,
                    tenant_id=tenant_id,
                    name=name,
                    key_hash=_hash(secret),
                    scopes=list(scopes),
                    created_at=time.time(),
                )
            )
        return CreatedKey(f"bq_{public}_{secret}", key_id, tenant_id, tuple(scopes))

    def verify(self, key: str) -> Principal | None:
        parsed = parse_key(key)
        if parsed is None:
            return None
        key_id, secret = parsed
        with self.reader.connect() as conn:
            row = conn.execute(
                select(api_keys, tenants.c.name.label("tenant_name"))
                .join(tenants, tenants.c.id == api_keys.c.tenant_id)
                .where(api_keys.c.id == key_id)
            ).first()
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.key_hash, _hash(secret)):
            return None
        return Principal(row.tenant_id, row.id, frozenset(row.scopes), row.tenant_name)

    def list(self, tenant_name: str | None = None) -> list[dict]:
        query = select(
            api_keys.c.id,
            api_keys.c.name,
            api_keys.c.scopes,
            api_keys.c.created_at,
            api_keys.c.revoked_at,
            tenants.c.name.label("tenant"),
        ).join(tenants, tenants.c.id == api_keys.c.tenant_id)
        if tenant_name is not None:
            query = query.where(tenants.c.name == tenant_name)
        with self.reader.connect() as conn:
            return [r._asdict() for r in conn.execute(query.order_by(api_keys.c.created_at))]

    def revoke(self, key_id: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
        return result.rowcount == 1
