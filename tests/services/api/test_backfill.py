"""``POST /v1/backfill``: analytics tampered with (rows changed, deleted, invented) inside a range are put back
to a recomputation from fact_sales, what changed is reported and audited, a second backfill changes nothing,
rows outside the range are left alone, and the live stream carries the backfill's event.

Its own database: the recomputation (tests/services/warehouse/harness.py) compares whole analytics tables. The
api runs as its own role, sdp_api, so the grants the backfill needs are tested too."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from ops.admin import create_key, migrate
from services.api.app import create_app
from services.api.backfill import TABLES
from services.api.settings import ApiSettings
from services.warehouse.settings import WarehouseSettings
from shared.db import create_engine
from shared.settings import PlatformSettings
from tests.conftest import as_role, create_database, drop_database, settings_from
from tests.http_server import serve
from tests.services.warehouse.harness import Customer, Product, Sale, Warehouse, at, check_analytics
from tests.sse import sse_frames

START, END = date(2024, 3, 1), date(2024, 3, 31)


async def _load(settings: WarehouseSettings) -> None:
    """Two customers, two products and sales on days inside and outside March, committed."""
    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            w = Warehouse(conn, settings.bulk_policy, prefix="bf")
            c1, c2, p1, p2 = w.key("C1"), w.key("C2"), w.key("P1"), w.key("P2")
            await w.customers(Customer(c1, at(1)), Customer(c2, at(1), state="SP"))
            await w.products(Product(p1, at(1)), Product(p2, at(1), category="books"))
            await w.sales(
                Sale(w.key("S1"), at(2, 10), c1, p1),
                Sale(w.key("S2"), at(3, 5, 9), c1, p2, quantity=2),
                Sale(w.key("S3"), at(3, 5, 12), c2, p1, payment_method="card"),
                Sale(w.key("S4"), at(3, 20), c2, p2, status="cancelled"),
                Sale(w.key("S5"), at(3, 21), c1, p1, unit_price=Decimal("7.50")),
                Sale(w.key("S6"), at(4, 2), c2, p2),
            )
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def database(test_env: dict[str, str]) -> Iterator[dict[str, str]]:
    database_url = f"{test_env['SDP_DATABASE_URL']}_backfill"
    asyncio.run(create_database(database_url))
    try:
        env = {**test_env, "SDP_DATABASE_URL": database_url}
        migrate(settings_from(env), create_database=False)
        asyncio.run(_load(settings_from(env, WarehouseSettings)))
        yield env
    finally:
        asyncio.run(drop_database(database_url))


@pytest.fixture(scope="module")
def api(database: dict[str, str]) -> Iterator[str]:
    env = {**database, "SDP_DATABASE_URL": as_role(database["SDP_DATABASE_URL"], "sdp_api")}
    with serve(create_app(settings_from(env, ApiSettings))) as url:
        yield url


def _client(database: dict[str, str], *scopes: str) -> httpx.Client:
    key = asyncio.run(create_key(settings_from(database), name=f"bf-{'-'.join(scopes)}", scopes=list(scopes)))
    return httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=60)


async def _execute(database_url: str, *statements: str) -> list[list[asyncpg.Record]]:
    conn = await asyncpg.connect(database_url)
    try:
        return [list(await conn.fetch(s)) for s in statements]
    finally:
        await conn.close()


async def _check(database_url: str) -> None:
    engine = create_engine(settings_from({"SDP_DATABASE_URL": database_url}, PlatformSettings))
    try:
        async with engine.connect() as conn:
            await check_analytics(conn)
    finally:
        await engine.dispose()


def _by_table(report: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    return {t["table"]: (t["changed"], t["inserted"], t["deleted"]) for t in report["tables"]}


TAMPER = [
    "UPDATE analytics.daily_sales SET revenue = revenue + 1, avg_order_value = 0 WHERE date = '2024-03-05'",
    "DELETE FROM analytics.daily_product_sales WHERE date = '2024-03-21'",
    """INSERT INTO analytics.daily_category_sales (date, category, orders, revenue, units, transactions, batch_id)
       VALUES ('2024-03-07', 'invented', 1, 1, 1, 1, gen_random_uuid())""",
    "UPDATE analytics.daily_region_sales SET distinct_customers = 9 WHERE date = '2024-03-05'",
    "DELETE FROM analytics.daily_customer_activity WHERE date = '2024-03-20'",
    "DELETE FROM analytics.daily_customer_activity WHERE date = '2024-03-21'",
    "UPDATE analytics.daily_payment_method_sales SET cancelled = 5 WHERE date = '2024-03-20'",
    "UPDATE analytics.customer_summary SET orders = 99, last_order_date = '2024-03-30' WHERE customer_id = 'bf-C1'",
    # Outside the range: the backfill must not touch it.
    "UPDATE analytics.daily_sales SET units = 77 WHERE date = '2024-02-01'",
]


def test_backfill_restores_tampered_analytics_and_reports_it(api: str, database: dict[str, str]) -> None:
    url = database["SDP_DATABASE_URL"]
    asyncio.run(_check(url))
    asyncio.run(_execute(url, *TAMPER))
    with pytest.raises(AssertionError):
        asyncio.run(_check(url))

    with _client(database, "admin") as admin, _client(database, "kpis:read", "batches:read") as reader:
        assert reader.post(f"{api}/v1/backfill", json={"from": "2024-03-01", "to": "2024-03-31"}).status_code == 403
        with reader.stream("GET", f"{api}/v1/events") as stream:
            lines = stream.iter_lines()
            assert next(lines) == ": connected"
            response = admin.post(
                f"{api}/v1/backfill", json={"from": "2024-03-01", "to": "2024-03-31", "reason": "tamper drill"}
            )
            assert response.status_code == 200, response.text
            frame = next(sse_frames(lines))
        first = response.json()
        second = admin.post(f"{api}/v1/backfill", json={"from": "2024-03-01", "to": "2024-03-31"}).json()

    assert first["from"] == "2024-03-01" and first["to"] == "2024-03-31" and first["facts"] == 4
    assert first["changed"] is True
    assert _by_table(first) == {
        "analytics.daily_sales": (1, 0, 0),
        "analytics.daily_category_sales": (0, 0, 1),
        "analytics.daily_payment_method_sales": (1, 0, 0),
        # both regions of 2024-03-05 (PE and SP)
        "analytics.daily_region_sales": (2, 0, 0),
        "analytics.daily_product_sales": (0, 1, 0),
        "analytics.daily_customer_activity": (0, 1, 0),
        "analytics.customer_summary": (1, 0, 0),
    }
    # 2024-03-20 has only a cancelled sale: no activity row to restore there.
    assert [t.name for t in TABLES] == [t["table"] for t in first["tables"]]

    assert "id" not in frame and frame["event"] == "analytics.backfilled"
    event = json.loads(frame["data"])
    assert (event["date_from"], event["date_to"], event["changed"]) == ("2024-03-01", "2024-03-31", True)
    assert event["audit_id"] == first["audit_id"]

    assert second["changed"] is False
    assert set(_by_table(second).values()) == {(0, 0, 0)}

    # Inside the range everything agrees with the facts again; outside it, the tampered row is still there.
    asyncio.run(_execute(url, "UPDATE analytics.daily_sales SET units = 1 WHERE date = '2024-02-01'"))
    asyncio.run(_check(url))

    [audits] = asyncio.run(
        _execute(
            url,
            "SELECT actor, target, details FROM ops.audit_log WHERE action = 'analytics.backfill' ORDER BY audit_id",
        )
    )
    assert [(a["actor"], a["target"]) for a in audits] == [("api-key:bf-admin", "2024-03-01/2024-03-31")] * 2
    details = json.loads(audits[0]["details"])
    assert details["reason"] == "tamper drill" and details["changed"] is True
    assert details["tables"]["analytics.daily_sales"] == {"changed": 1, "inserted": 0, "deleted": 0}


def test_backfill_ranges_are_checked_like_the_kpis(api: str, database: dict[str, str]) -> None:
    with _client(database, "admin") as admin:
        backwards = admin.post(f"{api}/v1/backfill", json={"from": "2024-03-31", "to": "2024-03-01"})
        too_long = admin.post(f"{api}/v1/backfill", json={"from": "2000-01-01", "to": "2024-03-01"})
        malformed = admin.post(f"{api}/v1/backfill", json={"from": "2024-13-01", "to": "2024-03-01"})
        missing = admin.post(f"{api}/v1/backfill", json={"from": "2024-03-01"})
    for response, status, code in (
        (backwards, 400, "invalid_range"),
        (too_long, 400, "invalid_range"),
        (malformed, 422, "invalid_request"),
        (missing, 422, "invalid_request"),
    ):
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code
