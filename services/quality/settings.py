"""Settings of the quality service."""

from shared.settings import PlatformSettings


class QualitySettings(PlatformSettings):
    pass
