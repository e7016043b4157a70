"""Tables, in SQLAlchemy Core, written to run unchanged on SQLite and PostgreSQL.

Times are Unix seconds (float) so no dialect's timestamp type is involved; payloads are
stored inline when small and in the blob store otherwise (``*_inline`` / ``*_blob``).
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

schema_version = Table(
    "cove_schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", Float, nullable=False),
)

applications = Table(
    "applications",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("latest_version", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

app_versions = Table(
    "app_versions",
    metadata,
    Column("app", String(200), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("module", String(200), nullable=False),
    Column("filename", String(300), nullable=False),
    Column("code_blob", String(100), nullable=False),
    Column("manifest", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

requests = Table(
    "requests",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("app", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("content_type", String(200)),
    Column("error", Text),
    Column("idempotency_key", String(300)),
    Column("idempotency_hash", String(100)),
    Index("ix_requests_app_created", "app", "created_at", "id"),
    Index("ix_requests_status", "status"),
    Index("ux_requests_idempotency", "app", "idempotency_key", unique=True),
)

function_calls = Table(
    "function_calls",
    metadata,
    Column("request_id", String(40), primary_key=True),
    Column("call_id", String(300), primary_key=True),
    Column("function", String(300), nullable=False),
    Column("parent_id", String(300)),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("input_mode", String(20), nullable=False),
    Column("output_mode", String(300), nullable=False),
    Column("args_inline", LargeBinary),
    Column("args_blob", String(100)),
    Column("output_inline", LargeBinary),
    Column("output_blob", String(100)),
    Column("content_type", String(200)),
    Column("error", Text),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
)

request_state = Table(
    "request_state",
    metadata,
    Column("request_id", String(40), primary_key=True),
    Column("key", String(500), primary_key=True),
    Column("value_inline", LargeBinary),
    Column("value_blob", String(100)),
    Column("updated_at", Float, nullable=False),
)

progress = Table(
    "progress",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(40), nullable=False),
    Column("call_id", String(300), nullable=False),
    Column("current", Float, nullable=False),
    Column("total", Float, nullable=False),
    Column("message", Text),
    Column("created_at", Float, nullable=False),
    Index("ix_progress_request", "request_id", "id"),
)

metrics = Table(
    "metrics",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(40), nullable=False),
    Column("call_id", String(300), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("name", String(300), nullable=False),
    Column("value", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_metrics_request", "request_id"),
)


# -- version 2 ----------------------------------------------------------------------------
call_attempts = Table(
    "call_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(40), nullable=False),
    Column("call_id", String(300), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("container", String(300)),
    Column("status", String(20), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("error", Text),
    Index("ix_call_attempts_call", "request_id", "call_id", "id"),
)

request_replays = Table(
    "request_replays",
    metadata,
    Column("request_id", String(40), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("last_at", Float, nullable=False),
    Column("from_version", Integer, nullable=False),
    Column("diverged", Text),
)


# -- version 3: what a request shows while it runs (cove.engine.events) -------------------
request_events = Table(
    "request_events",
    metadata,
    Column("request_id", String(40), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("data", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

call_logs = Table(
    "call_logs",
    metadata,
    Column("request_id", String(40), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("call_id", String(300), nullable=False),
    Column("function", String(300), nullable=False),
    Column("attempt", Integer),
    Column("container", String(300)),
    Column("stream", String(20), nullable=False),
    Column("level", String(20)),
    Column("message", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),  # the public part of the key, for lookups
    Column("namespace", String(100), nullable=False),
    Column("role", String(20), nullable=False),
    Column("name", String(200)),
    Column("secret_hash", String(64), nullable=False),  # SHA-256 hex: the key is never stored
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
    Index("ix_api_keys_namespace", "namespace"),
)


# -- version 5: several servers on one PostgreSQL database (cove.engine.leases) ------------
request_leases = Table(
    "request_leases",
    metadata,
    Column("request_id", String(40), primary_key=True),
    Column("owner", String(300), nullable=False),  # the replica that runs the request
    Column("expires_at", Float, nullable=False),  # database time, Unix seconds
    Index("ix_request_leases_owner", "owner"),
)


# -- version 6: what replicas over one database share (secrets, image builds, who is alive) --
secrets = Table(
    "secrets",
    metadata,
    # One row per namespace; the row of namespace "" holds no secret: it pins the key and
    # serializes writes (cove.engine.secrets).
    Column("namespace", String(100), primary_key=True),
    Column("token", LargeBinary, nullable=False),  # Fernet: the JSON {name: value}, encrypted
    Column("adopted", String(64)),  # SHA-256 of the secrets.enc file merged into it, if any
    Column("updated_at", Float, nullable=False),
)

images = Table(
    "images",
    metadata,
    Column("hash", String(64), primary_key=True),  # of the image's definition
    Column("name", String(200)),
    Column("status", String(20), nullable=False),  # ready | failed: its latest build
    Column("log", Text, nullable=False),  # the end of that build's log
    Column("built_at", Float, nullable=False),
)

replicas = Table(
    "replicas",
    metadata,
    Column("id", String(300), primary_key=True),
    Column("started_at", Float, nullable=False),
    Column("renewed_at", Float, nullable=False),  # database time, Unix seconds
    Column("expires_at", Float, nullable=False),  # live until then unless renewed
)

# -- version 7: the blob store that every replica over the database shares -------------------
blob_stores = Table(
    "blob_stores",
    metadata,
    Column("name", String(40), primary_key=True),  # "current": the one row
    # A random id; the marker blob (cove.blobs.identity) in the shared store holds it.
    Column("store_id", String(64), nullable=False),
    Column("url", Text, nullable=False),  # the store's URL as the recording replica had it
    Column("replica", String(300), nullable=False),  # the replica that recorded it
    Column("recorded_at", Float, nullable=False),
)
