"""media catalog

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 05:07:25.702956
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "media_changes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("collection", sa.String(length=100), nullable=False),
        sa.Column("media_id", sa.String(length=40), nullable=False),
        sa.Column("op", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_changes")),
    )
    with op.batch_alter_table("media_changes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_media_changes_scope", ["tenant_id", "collection", "id"], unique=False
        )

    op.create_table(
        "media",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("collection", sa.String(length=100), nullable=False),
        sa.Column("index_id", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("phash", sa.BigInteger(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("original_key", sa.String(length=1024), nullable=True),
        sa.Column("normalized_key", sa.String(length=1024), nullable=True),
        sa.Column("thumbnail_key", sa.String(length=1024), nullable=True),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("embedding_model", sa.String(length=100), nullable=True),
        sa.Column("embedding_version", sa.String(length=100), nullable=True),
        sa.Column("job_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("indexed_at", sa.Float(), nullable=True),
        sa.Column("synced_at", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_media_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media")),
        sa.UniqueConstraint("tenant_id", "index_id", name=op.f("uq_media_tenant_id_index_id")),
    )
    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.create_index(
            "ix_media_tenant_collection", ["tenant_id", "collection", "id"], unique=False
        )
        batch_op.create_index("ix_media_tenant_sha256", ["tenant_id", "sha256"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.drop_index("ix_media_tenant_sha256")
        batch_op.drop_index("ix_media_tenant_collection")

    op.drop_table("media")
    with op.batch_alter_table("media_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_media_changes_scope")

    op.drop_table("media_changes")
