"""Settings of the warehouse service."""

from shared.settings import PlatformSettings


class WarehouseSettings(PlatformSettings):
    pass
