"""indices for GET /v1/duplicates at 100k items: a collection's exact duplicates, its newest update

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_media_scope_sha256", "media", ["tenant_id", "collection", "state", "sha256"]
    )
    op.create_index("ix_media_scope_updated", "media", ["tenant_id", "collection", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_media_scope_updated", table_name="media")
    op.drop_index("ix_media_scope_sha256", table_name="media")
