"""Settings of the warehouse service."""

from services.warehouse.bulk import BulkPolicy
from shared.settings import PlatformSettings


class WarehouseSettings(PlatformSettings):
    # A load rebuilds a table's indexes rather than maintaining them when it adds at least this many rows
    # and at least this share of the rows the table holds (services/warehouse/bulk.py).
    warehouse_bulk_min_rows: int = 50_000
    warehouse_bulk_min_share: float = 0.25

    @property
    def bulk_policy(self) -> BulkPolicy:
        return BulkPolicy(min_rows=self.warehouse_bulk_min_rows, min_share=self.warehouse_bulk_min_share)
