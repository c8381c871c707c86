"""Settings of the API service."""

from pydantic import Field

from shared.settings import PlatformSettings


class ApiSettings(PlatformSettings):
    # Rows a CSV or Parquet export fetches from its cursor and writes out at a time: its memory is bounded
    # by this, not by the range.
    api_export_chunk_rows: int = Field(default=1000, ge=1)
    # Seconds a KPI JSON answer is kept in Redis (services/api/cache.py); 0 turns the cache off. A load
    # invalidates it at once (a new generation), so this bounds only the memory of unread answers.
    api_kpi_cache_ttl_seconds: int = Field(default=300, ge=0)
