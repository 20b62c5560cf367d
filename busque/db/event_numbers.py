"""Each tenant's events are numbered 1, 2, 3... of its own: the number is what clients see as
an event's id (SSE, WebSocket, gRPC, webhooks), so it tells nothing of other tenants' volume.

On PostgreSQL each tenant has a sequence: numbering takes no lock, so a tenant's concurrent
transactions never wait on each other for it. On SQLite writers take turns already, and the
tenant's row keeps the count.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Connection, cast, func, literal, update
from sqlalchemy.dialects.postgresql import REGCLASS

from busque.db.schema import tenants


def sequence_name(tenant_id: str) -> str:
    return "busque_events_" + hashlib.sha256(tenant_id.encode()).hexdigest()[:24]


def create_numbering(conn: Connection, tenant_id: str, start: int = 1) -> None:
    """For a new tenant, in the transaction that creates it."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            f"CREATE SEQUENCE IF NOT EXISTS {sequence_name(tenant_id)} START {start}"
        )


def next_number(conn: Connection, tenant_id: str):
    """The tenant's next number: on PostgreSQL an expression to put in the event's INSERT (no
    round trip of its own), on SQLite the number itself."""
    if conn.dialect.name == "postgresql":
        return func.nextval(cast(literal(sequence_name(tenant_id)), REGCLASS))
    return conn.execute(
        update(tenants)
        .where(tenants.c.id == tenant_id)
        .values(event_seq=tenants.c.event_seq + 1)
        .returning(tenants.c.event_seq)
    ).scalar_one()
