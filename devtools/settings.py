"""Settings of the local process stack, read by the stack and by the demo it plays."""

from __future__ import annotations

from pathlib import Path

from shared.settings import PROJECT_ROOT, PlatformSettings


class DevstackSettings(PlatformSettings):
    ingest_port: int = 8001
    api_port: int = 8000
    flower_port: int = 5555
    # user:password for Flower's UI and API; a random password is made (and printed) when unset.
    flower_basic_auth: str = ""
    run_dir: Path = PROJECT_ROOT / ".run"
    # A database URL per process (e.g. {"api": "postgresql://sdp_api@…"}), to run each service under its
    # own least-privilege role; a process not named uses SDP_DATABASE_URL.
    service_database_urls: dict[str, str] = {}
