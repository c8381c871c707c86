"""Settings of the ingest service."""

from services.ingest.connectors import SqlSource
from shared.settings import PlatformSettings


class IngestSettings(PlatformSettings):
    ingest_max_upload_bytes: int = 2 * 1024**3
    # A gzip upload may expand to at most this many bytes, and at most this many times its size once
    # it has expanded past ingest_gzip_ratio_floor bytes (a decompression bomb is refused with 413).
    ingest_max_decompressed_bytes: int = 16 * 1024**3
    ingest_max_gzip_ratio: int = 100
    ingest_gzip_ratio_floor: int = 64 * 1024**2
    # Where clients reach the API service, for the status_url of an accepted batch.
    api_public_url: str = "http://127.0.0.1:8000"
    # Incremental PostgreSQL sources the connectors pull (JSON list in SDP_INGEST_SQL_SOURCES; see SqlSource).
    ingest_sql_sources: list[SqlSource] = []
    # Seconds an HTTP pull waits for its source (to connect, and between bytes).
    ingest_http_timeout_seconds: float = 60.0
    # Hosts an HTTP pull may reach, redirects included ("files.example.com", "*.partner.example"); None: any.
    ingest_http_allowed_hosts: list[str] | None = None
