"""model presets: catalog entries with default parameters, loaded from a JSON file

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_presets",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("job_kind", sa.String(length=100), nullable=False),
        sa.Column("default_params", sa.JSON(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_presets")),
    )


def downgrade() -> None:
    op.drop_table("model_presets")
