"""Settings of the API service."""

from shared.settings import PlatformSettings


class ApiSettings(PlatformSettings):
    pass
