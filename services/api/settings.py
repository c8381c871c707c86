"""Settings of the API service."""

from pydantic import Field

from shared.settings import PlatformSettings


class ApiSettings(PlatformSettings):
    # Rows a CSV or Parquet export fetches from its cursor and writes out at a time: its memory is bounded
    # by this, not by the range.
    api_export_chunk_rows: int = Field(default=1000, ge=1)
