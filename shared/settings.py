"""Settings: the only module that reads the environment.

Every service has one settings class on the shared base; defaults work on a development machine of this
project's kind (PostgreSQL and Redis on loopback, a local-directory object store under ``.data/``).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, computed_field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class PlatformSettings(BaseSettings):
    """Settings every process of the platform reads."""

    model_config = SettingsConfigDict(env_prefix="SDP_", env_file=".env", extra="ignore")

    env: str = "dev"
    log_level: str = "INFO"
    log_json: bool = False

    database_url: str = "postgresql://postgres@127.0.0.1:5432/salesdp"
    db_pool_size: int = 5

    # Password analytics_reader (Metabase's read-only role) is created with when `migrate` finds it missing
    # (ops/readers.py); unset, the role is created without one and logs in only where pg_hba.conf trusts.
    analytics_reader_password: SecretStr = SecretStr("")

    redis_url: str = "redis://127.0.0.1:6379/0"
    events_channel: str = "sdp:events"
    queue_prefix: str = ""
    # Seconds before the broker delivers again a task whose worker never acknowledged it. Recovery does not
    # wait for it (stage leases do that); it only bounds how long a dead worker's message lingers.
    broker_visibility_timeout: int = 900
    # Seconds between a worker's sweeps for unacknowledged tasks older than the visibility timeout.
    broker_unacked_restore_interval: int = 5

    object_store_url: str = f"file://{PROJECT_ROOT / '.data' / 'objects'}"
    object_store_access_key: str = ""
    object_store_secret_key: SecretStr = SecretStr("")
    object_store_region: str = "us-east-1"
    bucket_raw: str = "raw-data"
    bucket_processed: str = "processed-data"
    bucket_analytics: str = "analytics"
    bucket_backups: str = "backups"

    # Stage leases (shared/leases.py): a running stage renews its lease this often; one not renewed for
    # stage_lease_seconds is dead and the reconciler queues the stage again; a batch whose stage died
    # stage_max_attempts times ends failed. A stage that died once is queued again at once; one that died
    # n >= 2 times waits stage_retry_backoff_seconds * 2^(n-2) first, so a suspected poison batch lets the
    # queue's other batches through instead of taking the worker down in a loop.
    stage_heartbeat_seconds: float = 5.0
    stage_lease_seconds: float = 20.0
    stage_max_attempts: int = 3
    stage_retry_backoff_seconds: float = 60.0

    # API keys (shared/auth.py): a rotated key is still accepted this long; a key's last use is written at most
    # this often, so an authenticated request costs a read, not a write.
    api_key_rotation_grace_seconds: float = Field(default=86400.0, ge=0)
    api_key_last_used_interval_seconds: float = Field(default=60.0, ge=0)

    work_dir: Path = PROJECT_ROOT / ".data" / "work"

    # Each Celery worker serves its own Prometheus metrics (shared/worker_metrics.py) on its service's port,
    # on this address; 0 turns a worker's metrics server off. Every process knows all three so that the
    # local stack and Prometheus's targets agree.
    worker_metrics_address: str = "127.0.0.1"
    transform_metrics_port: int = 9101
    quality_metrics_port: int = 9102
    warehouse_metrics_port: int = 9103

    # The declarative quality checks and freshness SLAs (shared/quality_config.py), read by the quality
    # worker for every batch, by the API and by the reconciler's freshness evaluation.
    quality_config: Path = PROJECT_ROOT / "services" / "quality" / "checks.toml"

    # Named points where a process dies or hangs, for fault tests (e.g. ["ingest.after_commit",
    # "transform.before_commit:hang"]); see shared/failpoints.py.
    failpoints: list[str] = []

    @computed_field  # type: ignore[prop-decorator]
    @property
    def async_database_url(self) -> str:
        """The DSN for SQLAlchemy's asyncpg dialect."""
        scheme, _, rest = self.database_url.partition("://")
        if scheme in ("postgresql", "postgres", "postgresql+asyncpg"):
            return f"postgresql+asyncpg://{rest}"
        raise ValueError(f"unsupported database URL scheme: {scheme}")

    @property
    def database_name(self) -> str:
        return urlsplit(self.database_url).path.lstrip("/")

    def metrics_port(self, service: str) -> int:
        """The port a worker of ``service`` serves its metrics on."""
        port: int = getattr(self, f"{service}_metrics_port")
        return port

    @property
    def kpi_cache_namespace(self) -> str:
        """Where the API's KPI cache and its generation counter live in Redis: one namespace per deployment
        (the queue prefix) and database, so runs sharing a Redis never read each other's answers."""
        return f"{self.queue_prefix}sdp:kpi:{self.database_name}:"

    def queue(self, service: str) -> str:
        """The Celery queue a service consumes; a prefix isolates test runs sharing one Redis."""
        return f"{self.queue_prefix}{service}"
