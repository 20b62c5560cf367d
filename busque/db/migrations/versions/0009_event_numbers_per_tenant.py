"""events numbered per tenant (job_events.seq), so that an event's id tells nothing of other
tenants' volume

Events written before keep their global id as their number, and every tenant's numbering goes
on above the highest of them, so a client resuming with an old id misses nothing.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _sequence_name(tenant_id: str) -> str:  # as busque.db.event_numbers.sequence_name
    return "busque_events_" + hashlib.sha256(tenant_id.encode()).hexdigest()[:24]


def upgrade() -> None:
    conn = op.get_bind()
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(
            sa.Column("event_seq", sa.BigInteger(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("job_events") as batch:
        batch.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
    op.execute("UPDATE job_events SET seq = id")
    with op.batch_alter_table("job_events") as batch:
        batch.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
        batch.create_index("ix_job_events_job_seq", ["job_id", "seq"])
        batch.create_index("ix_job_events_tenant_seq", ["tenant_id", "seq"])
    highest = conn.execute(sa.text("SELECT coalesce(max(id), 0) FROM job_events")).scalar()
    op.execute(sa.text("UPDATE tenants SET event_seq = :n").bindparams(n=highest))
    if conn.dialect.name == "postgresql":
        for (tenant_id,) in conn.execute(sa.text("SELECT id FROM tenants")):
            op.execute(
                f"CREATE SEQUENCE IF NOT EXISTS {_sequence_name(tenant_id)} START {highest + 1}"
            )


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        for (tenant_id,) in conn.execute(sa.text("SELECT id FROM tenants")):
            op.execute(f"DROP SEQUENCE IF EXISTS {_sequence_name(tenant_id)}")
    with op.batch_alter_table("job_events") as batch:
        batch.drop_index("ix_job_events_tenant_seq")
        batch.drop_index("ix_job_events_job_seq")
        batch.drop_column("seq")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("event_seq")
