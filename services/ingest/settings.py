"""Settings of the ingest service."""

from shared.settings import PlatformSettings


class IngestSettings(PlatformSettings):
    ingest_max_upload_bytes: int = 2 * 1024**3
    # Where clients reach the API service, for the status_url of an accepted batch.
    api_public_url: str = "http://127.0.0.1:8000"
