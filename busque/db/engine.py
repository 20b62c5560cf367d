"""Creating the SQLAlchemy engine: SQLite in WAL mode with immediate write locks, or PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url


def make_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, echo)
    if parsed.drivername == "postgresql":  # plain postgresql:// means psycopg 3 here
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    # No pool_pre_ping: it costs a round trip on every checkout. Connections are recycled
    # instead, and SQLAlchemy drops the whole pool on the first disconnect error it sees.
    return create_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=300, echo=echo
    )


def _sqlite_engine(url: str, echo: bool) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=20
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see "begin" below).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # Writers take the lock up front: a deferred transaction that reads and then writes can
        # fail with "database is locked" when another process wrote in between. Readers (see
        # readonly()) stay deferred so that, in WAL mode, they never wait for a writer.
        if conn.get_execution_options().get("readonly"):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def readonly(engine: Engine) -> Engine:
    """The same engine and pool, for reads: on PostgreSQL each statement runs on its own
    (autocommit, no BEGIN/ROLLBACK round trips); on SQLite a deferred transaction."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(readonly=True, isolation_level="AUTOCOMMIT")
    return engine.execution_options(readonly=True)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached now (down, restarting, the connection
    lost, the pool exhausted, SQLite locked), not that the request was wrong: worth a 503."""
    from sqlalchemy import exc as errors

    if isinstance(exc, errors.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, errors.OperationalError | errors.InterfaceError | errors.TimeoutError)
