"""duplicates resolved: trashed media, "not duplicates" decisions, resolutions (for undo)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("media") as batch:
        batch.add_column(sa.Column("trashed_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("resolution_id", sa.String(length=40), nullable=True))
    op.create_table(
        "duplicate_decisions",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("sha256_a", sa.String(length=64), nullable=False),
        sa.Column("sha256_b", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_duplicate_decisions_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "sha256_a", "sha256_b", name=op.f("pk_duplicate_decisions")
        ),
    )
    op.create_table(
        "resolutions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("undone_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_resolutions_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resolutions")),
    )
    op.create_index("ix_resolutions_tenant", "resolutions", ["tenant_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_resolutions_tenant", table_name="resolutions")
    op.drop_table("resolutions")
    op.drop_table("duplicate_decisions")
    with op.batch_alter_table("media") as batch:
        batch.drop_column("resolution_id")
        batch.drop_column("trashed_at")
