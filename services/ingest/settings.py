"""Settings of the ingest service, and the SQL sources its connectors pull (configured by the operator)."""

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from shared.datasets import Dataset
from shared.jsonlimits import MAX_JSON_DEPTH
from shared.settings import PlatformSettings


class SqlSource(BaseModel):
    """An incremental PostgreSQL source, configured by the operator.

    ``query`` is a plain SELECT (no placeholder; a trailing semicolon is ignored) whose output columns carry
    the contract's column names of ``dataset`` (others are dropped from the file) and ``watermark_column``
    (an output column of the query, named as it comes out of it). The connector wraps the query::

        SELECT <contract columns>, w::text FROM (<query>) AS sdp_source
        WHERE w > CAST(<stored watermark> AS <type of w>)   -- first pull: WHERE w IS NOT NULL
        ORDER BY w, <contract columns as text>

    PostgreSQL pushes that filter into the query, so an index on the watermark column serves it. The query
    runs in a read-only REPEATABLE READ transaction. The watermark column must only grow (a sequence, or a
    modification time set at commit): a row committed later with a watermark at or below the stored one
    is never pulled, and rows whose watermark is NULL are never pulled.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    dsn: SecretStr
    dataset: Dataset
    query: str = Field(min_length=1)
    watermark_column: str = Field(min_length=1, max_length=63)

    @field_validator("query")
    @classmethod
    def _strip_query(cls, value: str) -> str:
        stripped = value.strip().rstrip(";").strip()
        if not stripped:
            raise ValueError("the query is empty")
        return stripped


class IngestSettings(PlatformSettings):
    ingest_max_upload_bytes: int = 2 * 1024**3
    # A gzip upload may expand to at most this many bytes, and at most this many times its size once
    # it has expanded past ingest_gzip_ratio_floor bytes (a decompression bomb is refused with 413).
    ingest_max_decompressed_bytes: int = 16 * 1024**3
    ingest_max_gzip_ratio: int = 100
    ingest_gzip_ratio_floor: int = 64 * 1024**2
    # A JSON or NDJSON file whose first record nests deeper is refused (422 too_deeply_nested); the transform
    # rejects any later record past the same limit.
    ingest_max_json_depth: int = MAX_JSON_DEPTH
    # Threads that check and write the pieces of uploads that have arrived (a piece is one task; an upload
    # waiting for its client holds none).
    ingest_upload_threads: int = Field(default=8, ge=1)
    # An upload none of whose body arrives for this long is cut: 408 body_timeout, nothing stored.
    ingest_body_idle_timeout_seconds: float = Field(default=30.0, gt=0)
    # Where clients reach the API service, for the status_url of an accepted batch.
    api_public_url: str = "http://127.0.0.1:8000"
    # Incremental PostgreSQL sources the connectors pull (JSON list in SDP_INGEST_SQL_SOURCES; see SqlSource).
    ingest_sql_sources: list[SqlSource] = []
    # Seconds an HTTP pull waits for its source (to connect, and between bytes).
    ingest_http_timeout_seconds: float = 60.0
    # Hosts an HTTP pull may reach, redirects included ("files.example.com", "*.partner.example"); None: any.
    ingest_http_allowed_hosts: list[str] | None = None
