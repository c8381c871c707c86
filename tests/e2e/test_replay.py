"""Replay through the running platform: a loaded customers batch and a loaded sales batch, each replayed from
its raw object through every stage as a new attempt, leave every warehouse table (processed.* and
analytics.*) as it was, compared by content; the replay's stage events are on the live stream."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from devtools.sampledata import GeneratorConfig, write_customers, write_products, write_sales
from tests.conftest import Platform
from tests.e2e.test_sales_pipeline import post_file, wait_terminal
from tests.e2e.test_warehouse_pipeline import _own_keys
from tests.sse import sse_frames

pytestmark = pytest.mark.e2e

CONFIG = GeneratorConfig(
    seed=53, customers=80, products=25, sales=600, dimension_dirty_rate=0.1, start=date(2023, 3, 1), days=10
)
# Columns a replay may rewrite without changing the content: none. Everything is compared, load and refresh
# times included, because the warehouse rewrites only rows whose content differs.
EXCLUDED: dict[str, list[str]] = {}


async def _warehouse(database_url: str) -> dict[str, list[str]]:
    """Every table of processed and analytics, each as the sorted JSON of its rows."""
    conn = await asyncpg.connect(database_url)
    try:
        tables = [
            f"{r['table_schema']}.{r['table_name']}"
            for r in await conn.fetch(
                """SELECT table_schema, table_name FROM information_schema.tables
                   WHERE table_schema IN ('processed', 'analytics') AND table_type = 'BASE TABLE'
                   ORDER BY 1, 2"""
            )
        ]
        snapshot = {}
        for table in tables:
            rows = await conn.fetch(f"SELECT to_jsonb(t) - $1::text[] AS row FROM {table} t", EXCLUDED.get(table, []))
            snapshot[table] = sorted(r["row"] for r in rows)
        return snapshot
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def loaded(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """dataset -> batch id of this module's files, each loaded."""
    folder = tmp_path_factory.mktemp("replay")
    files: dict[str, Path] = {
        "customers": _own_keys(write_customers(CONFIG, folder / "customers.csv"), ("customer_id",), "R"),
        "products": _own_keys(write_products(CONFIG, folder / "products.csv"), ("product_id",), "R"),
        "sales": _own_keys(
            write_sales(CONFIG, folder / "sales.csv"), ("transaction_id", "customer_id", "product_id"), "R"
        ),
    }
    batches = {}
    with platform.client("ingest:write", "batches:read") as client:
        for dataset, path in files.items():
            accepted = post_file(client, platform, path, dataset)
            assert accepted.status_code == 202, accepted.text
            batch = wait_terminal(client, platform, accepted.json()["batch_id"])
            assert batch["status"] == "loaded", batch
            batches[dataset] = batch["batch_id"]
    return batches


def _replay(platform: Platform, admin: httpx.Client, batch_id: str) -> tuple[dict[str, Any], list[str]]:
    """Replay the batch while following its events; the replay's answer and the events' types up to its end."""
    with admin.stream("GET", f"{platform.api}/v1/events", params={"batch_id": batch_id}) as stream:
        lines = stream.iter_lines()
        assert next(lines) == ": connected"
        replayed = admin.post(
            f"{platform.api}/v1/batches/{batch_id}/replay",
            json={"reason": "replay drill"},
            headers={"Idempotency-Key": f"drill-{batch_id}"},
        )
        assert replayed.status_code == 202, replayed.text
        # Asked again while it runs: the same attempt, not a second one.
        again = admin.post(f"{platform.api}/v1/batches/{batch_id}/replay")
        assert again.status_code == 202, again.text
        assert again.json()["attempt"] == replayed.json()["attempt"] and again.json()["replayed"] is False
        types = []
        for frame in sse_frames(lines):
            types.append(frame["event"])
            assert json.loads(frame["data"])["batch_id"] == batch_id
            if frame["event"] in ("batch.loaded", "batch.quarantined", "batch.failed"):
                break
    return replayed.json(), types


def test_replaying_loaded_batches_leaves_the_warehouse_as_it_was(platform: Platform, loaded: dict[str, str]) -> None:
    url = platform.settings.database_url
    before = asyncio.run(_warehouse(url))
    assert before["processed.fact_sales"] and before["analytics.daily_sales"]
    with platform.client("admin") as admin:
        for dataset in ("customers", "sales"):
            batch_id = loaded[dataset]
            replayed, types = _replay(platform, admin, batch_id)
            assert (replayed["attempt"], replayed["status"], replayed["replayed"]) == (2, "received", True)
            assert types == ["batch.received", "batch.staged", "batch.validated", "batch.loaded"], dataset
            batch = wait_terminal(admin, platform, batch_id)
            assert (batch["status"], batch["attempt"]) == ("loaded", 2), batch
            assert {s["stage"]: s["attempts"] for s in batch["stages"]} == {
                "ingest": 1,
                "transform": 2,
                "quality": 2,
                "warehouse": 2,
            }
            # The Idempotency-Key of the finished replay answers with it, starting nothing.
            repeated = admin.post(
                f"{platform.api}/v1/batches/{batch_id}/replay", headers={"Idempotency-Key": f"drill-{batch_id}"}
            )
            assert repeated.json()["attempt"] == 2 and repeated.json()["replayed"] is False
            assert repeated.json()["status"] == "loaded"
    after = asyncio.run(_warehouse(url))
    assert after.keys() == before.keys()
    differing = [table for table in before if before[table] != after[table]]
    assert not differing, f"a replay changed {differing}"
