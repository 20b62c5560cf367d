"""pair_checks: duplicate candidate pairs compared pixel for pixel, remembered by their bytes

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pair_checks",
        sa.Column("sha256_a", sa.String(64), nullable=False),
        sa.Column("sha256_b", sa.String(64), nullable=False),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("agreement", sa.Float(), nullable=True),
        sa.Column("checked_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("sha256_a", "sha256_b", "method", name=op.f("pk_pair_checks")),
    )


def downgrade() -> None:
    op.drop_table("pair_checks")
