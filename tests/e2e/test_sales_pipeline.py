"""One sales file from POST to KPI through the running platform, checked against a recomputation."""

from __future__ import annotations

import asyncio
import time
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from devtools.sampledata import GeneratorConfig, write_sales
from tests.conftest import Platform
from tests.reference import count_rows, daily_kpis

pytestmark = pytest.mark.e2e

TERMINAL = {"loaded", "quarantined", "failed"}


def post_file(client: httpx.Client, platform: Platform, path: Path, dataset: str = "sales") -> httpx.Response:
    with path.open("rb") as fh:
        return client.post(
            f"{platform.ingest}/v1/datasets/{dataset}/files", files={"file": (path.name, fh, "text/csv")}
        )


def wait_terminal(client: httpx.Client, platform: Platform, batch_id: str, timeout: float = 180.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch: dict[str, Any] = client.get(f"{platform.api}/v1/batches/{batch_id}").raise_for_status().json()
        if batch["status"] in TERMINAL:
            return batch
        time.sleep(0.3)
    raise AssertionError(f"batch {batch_id} did not finish in {timeout}s")


def api_kpis(client: httpx.Client, platform: Platform, start: date, end: date) -> dict[date, dict[str, Any]]:
    body = client.get(f"{platform.api}/v1/kpis/daily", params={"from": str(start), "to": str(end)}).raise_for_status()
    return {date.fromisoformat(day["date"]): day for day in body.json()["days"]}


def assert_counts_match(batch: dict[str, Any], path: Path) -> None:
    """The batch's row accounting equals the reference's for the same file."""
    rows_in, valid, rejected, duplicate = count_rows(path)
    assert batch["counts"] == {
        "rows_in": rows_in,
        "rows_valid": valid,
        "rows_rejected": rejected,
        "rows_duplicate": duplicate,
    }


def assert_kpis_match(api: dict[date, dict[str, Any]], expected: dict[date, Any]) -> None:
    assert set(api) == set(expected)
    for day, ref in expected.items():
        got = api[day]
        assert got["orders"] == ref.orders, day
        assert Decimal(str(got["revenue"])) == ref.revenue, day
        assert got["units"] == ref.units, day
        assert Decimal(str(got["avg_order_value"])) == ref.avg_order_value, day
        assert got["distinct_customers"] == ref.distinct_customers, day
        assert got["cancelled"] == ref.cancelled, day
        assert got["refunded"] == ref.refunded, day


def test_sales_file_reaches_loaded_and_kpis_match_a_recomputation(platform: Platform, tmp_path: Path) -> None:
    config = GeneratorConfig(seed=7, sales=5_000, dirty_rate=0.06, start=date(2024, 3, 1), days=10)
    path = write_sales(config, tmp_path / "sales.csv")
    with platform.client("ingest:write", "batches:read", "kpis:read") as client:
        accepted = post_file(client, platform, path)
        assert accepted.status_code == 202, accepted.text
        body = accepted.json()
        assert body["status"] == "received"
        assert body["status_url"] == f"{platform.api}/v1/batches/{body['batch_id']}"

        batch = wait_terminal(client, platform, body["batch_id"])
        assert batch["status"] == "loaded", batch
        assert_counts_match(batch, path)
        assert batch["counts"]["rows_rejected"] > 0 and batch["counts"]["rows_duplicate"] > 0
        assert [s["stage"] for s in batch["stages"]] == ["ingest", "transform", "quality", "warehouse"]
        assert all(s["status"] == "succeeded" for s in batch["stages"])
        assert {q["check_name"] for q in batch["quality"]} >= {"schema.required_columns", "not_null.raw.transaction_id"}

        # Every rejected row is readable through the API (as its own role), page by page, with its reasons.
        rejects: list[dict[str, Any]] = []
        after: int | None = 0
        while after is not None:
            page = client.get(
                f"{platform.api}/v1/batches/{body['batch_id']}/rejects", params={"after_line": after, "limit": 50}
            )
            assert page.status_code == 200, page.text
            rejects += page.json()["rejects"]
            after = page.json()["next_after_line"]
        assert len(rejects) == batch["counts"]["rows_rejected"]
        assert all(r["reasons"] and r["source_line"] >= 2 for r in rejects)

        expected = daily_kpis(path)
        assert_kpis_match(api_kpis(client, platform, date(2024, 3, 1), date(2024, 3, 31)), expected)

        again = post_file(client, platform, path)
        assert again.status_code == 200, again.text
        assert again.json()["batch_id"] == body["batch_id"]
        assert_kpis_match(api_kpis(client, platform, date(2024, 3, 1), date(2024, 3, 31)), expected)


def test_a_resent_transaction_replaces_the_earlier_record(platform: Platform, tmp_path: Path) -> None:
    header = (
        "transaction_id,transaction_ts,customer_id,product_id,quantity,unit_price,total_amount,payment_method,status\n"
    )
    first = tmp_path / "first.csv"
    first.write_text(
        header
        + "RS-1,2023-05-01T10:00:00Z,C1,P1,2,10.00,20.00,pix,pending\n"
        + "RS-2,2023-05-01T11:00:00Z,C2,P1,1,5.50,5.50,cash,completed\n"
    )
    second = tmp_path / "second.csv"
    second.write_text(header + "RS-1,2023-05-01T10:00:00Z,C1,P1,2,10.00,20.00,pix,completed\n")
    with platform.client("ingest:write", "batches:read", "kpis:read") as client:
        for path in (first, second):
            accepted = post_file(client, platform, path).raise_for_status().json()
            assert wait_terminal(client, platform, accepted["batch_id"])["status"] == "loaded"
        day = api_kpis(client, platform, date(2023, 5, 1), date(2023, 5, 1))[date(2023, 5, 1)]
    assert day["orders"] == 2
    assert Decimal(str(day["revenue"])) == Decimal("25.50")
    assert day["units"] == 3


def test_the_services_connect_under_their_own_roles(platform: Platform) -> None:
    async def users() -> set[str]:
        conn = await asyncpg.connect(platform.settings.database_url)
        try:
            rows = await conn.fetch(
                """SELECT DISTINCT usename FROM pg_stat_activity
                   WHERE datname = current_database() AND usename LIKE 'sdp\\_%'"""
            )
            return {r["usename"] for r in rows}
        finally:
            await conn.close()

    # Each service's pool keeps a connection open once it has worked; the earlier tests made them all work.
    assert asyncio.run(users()) >= {"sdp_ingest", "sdp_api", "sdp_transform", "sdp_quality", "sdp_warehouse"}
