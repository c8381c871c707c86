"""The SCD2 scenarios compare whole analytics tables with a recomputation from fact_sales, so they run on a
database of their own: other tests seed analytics rows directly or leave facts behind in the session's."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from shared.admin import migrate
from shared.settings import PlatformSettings
from tests.conftest import create_database, drop_database, settings_from


@pytest.fixture(scope="package")
def settings(test_env: dict[str, str]) -> Iterator[PlatformSettings]:
    database_url = f"{test_env['SDP_DATABASE_URL']}_warehouse"
    asyncio.run(create_database(database_url))
    try:
        own = settings_from({**test_env, "SDP_DATABASE_URL": database_url})
        migrate(own, create_database=False)
        yield own
    finally:
        asyncio.run(drop_database(database_url))
