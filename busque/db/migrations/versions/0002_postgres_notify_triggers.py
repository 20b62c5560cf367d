"""postgres notify triggers: NOTIFY busque_jobs / busque_events when rows are inserted

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

PostgreSQL only (SQLite has no LISTEN/NOTIFY). Statement-level, with a constant payload, so a
transaction sends each channel at most once, at commit.
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

CHANNELS = {"jobs": "busque_jobs", "job_events": "busque_events"}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, channel in CHANNELS.items():
        op.execute(
            f"""
            CREATE OR REPLACE FUNCTION notify_{channel}() RETURNS trigger AS $$
            BEGIN
                PERFORM pg_notify('{channel}', '');
                RETURN NULL;
            END;
            $$ LANGUAGE plpgsql;
            """
        )
        op.execute(
            f"CREATE TRIGGER {table}_notify AFTER INSERT ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION notify_{channel}()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, channel in CHANNELS.items():
        op.execute(f"DROP TRIGGER IF EXISTS {table}_notify ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS notify_{channel}()")
