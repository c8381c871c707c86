"""The SCD2 scenarios compare whole analytics tables with a recomputation from fact_sales, so they run on a
database of their own: other tests seed analytics rows directly or leave facts behind in the session's.

Every scenario runs twice: with indexes maintained row by row, and with every load rebuilding them
(services/warehouse/bulk.py), the path large batches take."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from ops.admin import migrate
from services.warehouse.settings import WarehouseSettings
from tests.conftest import create_database, drop_database, settings_from

# indexes -> the policy's settings
POLICIES = {
    "maintained": {"warehouse_bulk_min_rows": 2**62},
    "rebuilt": {"warehouse_bulk_min_rows": 0, "warehouse_bulk_min_share": 0.0},
    # some dates of a load rebuilt, the others moved; some tables rebuilt, others maintained
    "mixed": {"warehouse_bulk_min_rows": 0, "warehouse_bulk_min_share": 0.5},
}


@pytest.fixture(scope="package", params=list(POLICIES))
def settings(test_env: dict[str, str], request: pytest.FixtureRequest) -> Iterator[WarehouseSettings]:
    database_url = f"{test_env['SDP_DATABASE_URL']}_warehouse_{request.param}"
    asyncio.run(create_database(database_url))
    try:
        env = {**test_env, "SDP_DATABASE_URL": database_url}
        own = settings_from(env, WarehouseSettings, **POLICIES[request.param])
        migrate(own, create_database=False)
        yield own
    finally:
        asyncio.run(drop_database(database_url))
