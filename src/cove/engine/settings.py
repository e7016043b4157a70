"""Server settings: passed in, never read at import time (``COVE_*`` environment variables)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cove.paths import absolute_path


def _default_max_containers() -> int:
    return max(2, 2 * (os.cpu_count() or 1))


def _machine_memory_gb() -> float:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return pages * size / 1024**3
    except (ValueError, OSError):
        return 1.0


class Settings(BaseSettings):
    """How a Cove server runs. Every field can be set as ``COVE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="COVE_", extra="ignore", validate_assignment=True)

    host: str = "127.0.0.1"
    port: int = 8900
    data_dir: Path = Path(".cove")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite file in the data folder"
    )
    sqlite_synchronous: str = Field(
        default="FULL",
        description="SQLite synchronous level: FULL survives power loss, NORMAL only crashes",
    )
    default_max_containers: int = Field(default_factory=_default_max_containers, ge=1)
    container_idle_timeout: float = Field(default=60.0, gt=0)
    inline_payload_limit: int = Field(default=16 * 1024, ge=0)
    machine_retries: int = Field(
        default=3, ge=0, description="retries of calls lost to a container crash"
    )
    max_wait: float = Field(default=300.0, gt=0, description="longest ?wait= accepted")
    container_start_timeout: float = Field(
        default=300.0, gt=0, description="longest a container may take to become ready"
    )
    shutdown_grace: float = Field(
        default=30.0, ge=0, description="on SIGTERM, how long running calls may finish"
    )
    use_templates: bool = Field(
        default=True,
        description="fork containers from a process that imported the code (fast cold "
        "starts); False spawns a fresh process for each",
    )
    memory_check_interval: float = Field(
        default=0.25, gt=0, description="how often containers' memory is checked (s)"
    )
    cpus: float = Field(default_factory=lambda: float(os.cpu_count() or 1), gt=0)
    memory_gb: float = Field(default_factory=lambda: _machine_memory_gb(), gt=0)
    gpus: list[str] = Field(default_factory=list, description="GPU models on this machine")
    regions: list[str] = Field(default_factory=lambda: ["us-east-1", "eu-west-1"])

    # -- several servers on one PostgreSQL database (docs/postgres.md) ---------------------
    lease_seconds: float = Field(
        default=10.0,
        gt=0,
        description="a replica's hold on its requests lasts this long unless renewed; another "
        "replica takes over the requests of one that stopped renewing",
    )
    replica_id: str | None = Field(
        default=None,
        description="this server's name among replicas (default: host name and data folder)",
    )

    # -- where containers run (docs/ray.md) ----------------------------------------------
    runtime: str = Field(
        default="local",
        pattern="^(local|ray)$",
        description="local: processes on this machine; ray: actors on a Ray cluster",
    )
    ray_address: str | None = Field(
        default=None, description="the Ray cluster (HOST:PORT of its head; default: auto)"
    )
    ray_callback_host: str | None = Field(
        default=None,
        description="the address Ray nodes reach this server at (default: the one on the route "
        "to the Ray head)",
    )

    # -- files and blobs (docs/files.md) ---------------------------------------------------
    blob_url: str | None = Field(
        default=None,
        description="where blobs live: file:///path or s3://bucket/prefix; default: the "
        "blobs folder in the data folder",
    )
    blob_s3_endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint")
    blob_s3_region: str | None = None
    blob_s3_access_key_id: str | None = None
    blob_s3_secret_access_key: str | None = None
    blob_s3_part_size: int = Field(default=16 * 1024 * 1024, ge=5 * 1024 * 1024)
    max_upload_bytes: int | None = Field(
        default=None, ge=0, description="largest request body accepted (413 beyond); None: no limit"
    )
    retention_days: float | None = Field(
        default=None, gt=0, description="finished requests older than this are removed"
    )
    cleanup_interval: float = Field(default=3600.0, gt=0, description="seconds between cleanups")
    blob_grace: float = Field(
        default=3600.0,
        ge=0,
        description="an unreferenced blob or unfinished upload younger than this is kept",
    )

    # -- security (docs/security.md) --------------------------------------------------------
    auth: bool = Field(
        default=False,
        description="every API call needs an API key (Authorization: Bearer KEY); without "
        "it the server may only listen on 127.0.0.1",
    )
    max_json_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="largest JSON body accepted (413 beyond)"
    )
    max_code_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="largest code file a deploy accepts"
    )
    max_headers: int = Field(default=100, ge=8, description="most headers a request may carry")
    max_streams_per_key: int = Field(
        default=32, ge=1, description="most event streams (SSE) open at once per API key"
    )
    body_timeout: float = Field(
        default=30.0, gt=0, description="longest wait for the next piece of a request body"
    )

    # -- paths: made absolute once, here, where every setting enters (cove/paths.py) ---------

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        return absolute_path(value)

    @field_validator("blob_url", mode="after")
    @classmethod
    def _absolute_blob_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parsed = urlparse(value)
        if parsed.scheme == "":
            return absolute_path(Path(value)).as_uri()
        if parsed.scheme == "file" and parsed.netloc not in ("", "localhost"):
            # file:relative/dir parses with no netloc; file://dir/x names host "dir": read
            # both as a path relative to the working directory.
            return absolute_path(Path(parsed.netloc + unquote(parsed.path))).as_uri()
        if parsed.scheme == "file":
            return absolute_path(Path(unquote(parsed.path))).as_uri()
        return value

    @field_validator("database_url", mode="after")
    @classmethod
    def _absolute_sqlite_path(cls, value: str | None) -> str | None:
        if value is None or not value.startswith("sqlite:///"):
            return value
        path = value.removeprefix("sqlite:///")
        if path in ("", ":memory:") or path.startswith("/"):
            return value
        return f"sqlite:///{absolute_path(Path(path))}"

    def database(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'cove.db'}"
