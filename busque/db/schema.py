"""The SQL schema: one definition for SQLite and PostgreSQL. Alembic migrations create it.

Times are unix seconds (float) so that SQLite and PostgreSQL compare them the same way.
Ids are time-ordered strings (see busque.ids) so that `ORDER BY id` is creation order.
"""

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# BIGINT autoincrement on PostgreSQL, INTEGER PRIMARY KEY (rowid) on SQLite.
EventId = BigInteger().with_variant(Integer, "sqlite")

tenants = Table(
    "tenants",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("webhook_secret", String(100), nullable=False),
    Column("created_at", Float, nullable=False),
    # The tenant's last event number on SQLite (PostgreSQL numbers them with a sequence per
    # tenant: busque.db.event_numbers).
    Column("event_seq", BigInteger, nullable=False, server_default="0"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),  # the public part of the key
    Column("tenant_id", String(40), ForeignKey("tenants.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False),  # sha256 of the secret part
    Column("scopes", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float),
    Column("revoked_at", Float),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenants.id"), nullable=False),
    Column("model", String(100), nullable=False),
    Column("input", JSON, nullable=False),
    Column("params", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("priority", Integer, nullable=False, default=0),
    Column("progress", Float, nullable=False, default=0.0),
    Column("attempt", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False),
    Column("timeout_s", Float, nullable=False),
    Column("run_after", Float, nullable=False),
    Column("lease_owner", String(120)),
    Column("lease_expires_at", Float),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("webhook", JSON),
    Column("idempotency_key", String(200)),
    Column("request_hash", String(64)),
    Column("result", JSON),
    Column("error_code", String(64)),
    Column("error_message", Text),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("updated_at", Float, nullable=False),
    Column("labels", JSON),  # the client's own small string map (a door's customer id...)
    UniqueConstraint("tenant_id", "idempotency_key"),
    Index("ix_jobs_claim", "state", "priority", "id"),
    Index("ix_jobs_lease", "state", "lease_expires_at"),
    Index("ix_jobs_tenant_id", "tenant_id", "id"),
    Index("ix_jobs_tenant_claim", "tenant_id", "state", "priority", "id"),  # fair claims
)

# One row per label of a job, so that lists filter by label with an index on both databases.
job_labels = Table(
    "job_labels",
    metadata,
    Column("job_id", String(40), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("tenant_id", String(40), nullable=False),
    Column("value", String(256), nullable=False),
    Index("ix_job_labels_lookup", "tenant_id", "key", "value", "job_id"),
)

job_events = Table(
    "job_events",
    metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("job_id", String(40), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("tenant_id", String(40), nullable=False),
    Column("type", String(40), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("data", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    # What clients see as the event's id: numbered per tenant, so that it tells nothing of
    # other tenants' events (`id`, global, is for following the table).
    Column("seq", BigInteger, nullable=False),
    Index("ix_job_events_job", "job_id", "id"),
    Index("ix_job_events_tenant", "tenant_id", "id"),
    Index("ix_job_events_job_seq", "job_id", "seq"),
    Index("ix_job_events_tenant_seq", "tenant_id", "seq"),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("job_id", String(40), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("tenant_id", String(40), nullable=False),
    Column("name", String(200), nullable=False),
    Column("object_key", String(1024), nullable=False),
    Column("content_type", String(200)),
    Column("size", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("job_id", "name"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(40), primary_key=True),  # also the webhook-id header: stable on retries
    Column("job_id", String(40), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("tenant_id", String(40), nullable=False),
    Column("event_id", EventId, nullable=False),
    Column("event_type", String(40), nullable=False),
    Column("url", Text, nullable=False),
    Column("secret", String(100), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("state", String(16), nullable=False),  # pending | succeeded | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),
    Column("locked_until", Float),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("log", JSON, nullable=False),  # one entry per attempt: at, status, error, ms
    Column("created_at", Float, nullable=False),
    Column("delivered_at", Float),
    Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
    Index("ix_webhook_deliveries_job", "job_id"),
)

# ---- the media catalog (ingest, search, backfill) ----

media = Table(
    "media",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenants.id"), nullable=False),
    Column("collection", String(100), nullable=False),
    # The id the vector/pHash indices know it by: 63 of the media id's random bits (>= 0).
    Column("index_id", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),  # pending | indexed | trashed
    Column("sha256", String(64), nullable=False),
    Column("phash", BigInteger, nullable=False),  # 64-bit pHash as a signed integer
    # The pHashes of its turns and mirrors (busque.media.phash.TRANSFORMS: 7 big-endian
    # 8-byte codes); None for a video or a row catalogued before they were kept.
    Column("phash_variants", LargeBinary),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("format", String(16), nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("labels", JSON, nullable=False),
    Column("original_key", String(1024)),
    Column("normalized_key", String(1024)),
    Column("thumbnail_key", String(1024)),
    Column("embedding", LargeBinary),  # float32 little-endian, for reindexing
    Column("embedding_model", String(100)),
    Column("embedding_version", String(100)),
    Column("job_id", String(40)),
    Column("created_at", Float, nullable=False),
    Column("indexed_at", Float),
    Column("synced_at", Float),
    Column("updated_at", Float, nullable=False),
    Column("faces_at", Float),  # when its faces were last analysed (None: never)
    Column("trashed_at", Float),  # state "trashed" since then; purged media.trash_days later
    Column("resolution_id", String(40)),  # the duplicate resolution that trashed it
    Index("ix_media_tenant_collection", "tenant_id", "collection", "id"),
    Index("ix_media_tenant_sha256", "tenant_id", "sha256"),
    # Exact duplicates of a collection: a scan of this index, not a sort of its rows.
    Index("ix_media_scope_sha256", "tenant_id", "collection", "state", "sha256"),
    # A collection's newest update (busque.media.duplicate_review's version): one index seek.
    Index("ix_media_scope_updated", "tenant_id", "collection", "updated_at"),
    UniqueConstraint("tenant_id", "index_id"),
)

# What changed in each (tenant, collection) index, in order: the delta a Matcher replays on top
# of its last snapshot.
media_changes = Table(
    "media_changes",
    metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("tenant_id", String(40), nullable=False),
    Column("collection", String(100), nullable=False),
    Column("media_id", String(40), nullable=False),
    Column("op", String(8), nullable=False),  # add | remove
    Column("created_at", Float, nullable=False),
    Index("ix_media_changes_scope", "tenant_id", "collection", "id"),
)

# Per-collection options (collections themselves exist as soon as media names them).
collection_settings = Table(
    "collection_settings",
    metadata,
    Column("tenant_id", String(40), ForeignKey("tenants.id"), primary_key=True),
    Column("name", String(100), primary_key=True),
    Column("faces", Boolean, nullable=False),
    Column("updated_at", Float, nullable=False),
)

people = Table(
    "people",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenants.id"), nullable=False),
    Column("name", String(200)),
    Column("cover_face_id", String(40)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_people_tenant", "tenant_id", "id"),
)

# One row per detected face. `seq` is the id the face index knows it by (and follows, in order).
faces = Table(
    "faces",
    metadata,
    Column("seq", EventId, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("tenant_id", String(40), ForeignKey("tenants.id"), nullable=False),
    Column("media_id", String(40), ForeignKey("media.id", ondelete="CASCADE"), nullable=False),
    Column("person_id", String(40), ForeignKey("people.id", ondelete="SET NULL")),
    Column("x", Integer, nullable=False),
    Column("y", Integer, nullable=False),
    Column("w", Integer, nullable=False),
    Column("h", Integer, nullable=False),
    Column("score", Float, nullable=False),
    Column("embedding", LargeBinary, nullable=False),  # float32 little-endian
    Column("landmarks", JSON, nullable=False),
    Column("thumbnail_key", String(1024)),
    Column("model", String(100), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("frame_s", Float),  # a video's face: the time of the frame it was found in
    Index("ix_faces_tenant_seq", "tenant_id", "seq"),
    Index("ix_faces_media", "media_id"),
    Index("ix_faces_person", "person_id"),
)

# The files of a legacy library a backfill has synced: every path of a photo is kept (exact
# duplicates are stored once, as one media row with several files). A rerun skips a file whose
# path, size and mtime are unchanged.
library_files = Table(
    "library_files",
    metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("tenant_id", String(40), ForeignKey("tenants.id"), nullable=False),
    Column("library", String(200), nullable=False),
    Column("path", String(2048), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mtime", Float, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("media_id", String(40), ForeignKey("media.id", ondelete="SET NULL")),
    Column("synced_at", Float, nullable=False),
    UniqueConstraint("tenant_id", "library", "path"),
    Index("ix_library_files_sha256", "tenant_id", "sha256"),
)

# Objects to delete from the object store, written in the transaction that makes them garbage
# (a media row deleted, an ingest undone) and deleted by busque.media.janitor once the store
# answers: a store outage never keeps a row alive nor leaves an object behind for good. An
# original (content-addressed, `sha256` set) is kept if media with those bytes exist by then.
object_deletions = Table(
    "object_deletions",
    metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("tenant_id", String(40), nullable=False),
    Column("object_key", String(1024), nullable=False),
    Column("sha256", String(64)),
    Column("created_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
)

# One token bucket per tenant for its API requests, shared by every Gateway replica
# (busque.auth.rate_buckets): the tokens left when it was last drawn on, and when that was.
rate_buckets = Table(
    "rate_buckets",
    metadata,
    Column("tenant_id", String(40), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("refilled_at", Float, nullable=False),
)

# Named model presets: a catalog entry with its default parameters, loaded from a JSON file
# (`busque models load`), so defaults change without code (busque.jobs.presets).
model_presets = Table(
    "model_presets",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("job_kind", String(100), nullable=False),
    Column("default_params", JSON, nullable=False),
    Column("inputs", JSON, nullable=False),  # the client's input name -> the job kind's
    Column("description", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# "Not duplicates", remembered by the pair's bytes (sha256, the smaller first): a rescan, a
# re-ingest or a backfill of the same bytes never proposes the pair again (busque.media.trash).
duplicate_decisions = Table(
    "duplicate_decisions",
    metadata,
    Column("tenant_id", String(40), ForeignKey("tenants.id"), primary_key=True),
    Column("sha256_a", String(64), primary_key=True),
    Column("sha256_b", String(64), primary_key=True),
    Column("created_at", Float, nullable=False),
)

# How two pictures compare pixel for pixel (busque.media.same_picture), by their bytes (sha256,
# the smaller first) and the method that judged them: the check of a duplicate candidate pair
# runs once, whatever rescans, restarts or replicas follow. Bytes only, no tenant: the verdict
# says nothing a tenant could not compute from bytes it already holds.
pair_checks = Table(
    "pair_checks",
    metadata,
    Column("sha256_a", String(64), primary_key=True),
    Column("sha256_b", String(64), primary_key=True),
    Column("method", String(64), primary_key=True),
    Column("agreement", Float),  # None: too little texture to tell
    Column("checked_at", Float, nullable=False),
)

# A resolution of duplicate groups: what it changed, so that undo restores exactly the state
# before it (the kept items' metadata, the paths moved to them, the items trashed).
resolutions = Table(
    "resolutions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenants.id"), nullable=False),
    Column("groups", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("undone_at", Float),
    Index("ix_resolutions_tenant", "tenant_id", "id"),
)
