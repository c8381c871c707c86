"""Customers and products files through the running platform's transform stage, checked against the reference.

The warehouse load of these datasets is not built yet, so the test follows a batch to its staged result
(the batch.staged event, raw/staging/rejects rows) and to whatever terminal status comes after, not to
``loaded``.
"""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from devtools.sampledata import GeneratorConfig, write_customers, write_products
from tests.conftest import Platform
from tests.e2e.test_sales_pipeline import post_file, wait_terminal
from tests.reference import count_dimension_rows, load_valid_dimension

pytestmark = pytest.mark.e2e

WRITERS = {"customers": write_customers, "products": write_products}
KEYS = {"customers": "customer_id", "products": "product_id"}


async def _stage_results(database_url: str, dataset: str, batch_id: str) -> dict[str, Any]:
    conn = await asyncpg.connect(database_url)
    try:
        events = await conn.fetch(
            "SELECT payload FROM ops.batch_events WHERE batch_id = $1 AND type = 'batch.staged'", batch_id
        )
        raw = await conn.fetchval(f"SELECT count(*) FROM raw.{dataset} WHERE batch_id = $1", batch_id)
        staged = await conn.fetch(
            f"SELECT {KEYS[dataset]} AS key, updated_at, source_line FROM staging.{dataset} WHERE batch_id = $1",
            batch_id,
        )
        rejects = await conn.fetch(
            f"SELECT source_line, reasons FROM staging.{dataset}_rejects WHERE batch_id = $1", batch_id
        )
    finally:
        await conn.close()
    return {
        "staged_events": [json.loads(e["payload"]) for e in events],
        "raw": raw,
        "staged": {(r["key"], r["updated_at"]): r["source_line"] for r in staged},
        "staged_rows": len(staged),
        "rejects": {r["source_line"]: list(r["reasons"]) for r in rejects},
    }


@pytest.mark.parametrize("dataset", ["customers", "products"])
def test_a_dimension_file_is_staged(platform: Platform, tmp_path: Path, dataset: str) -> None:
    config = GeneratorConfig(
        seed=13, customers=300, products=120, dimension_dirty_rate=0.2, start=date(2024, 1, 1), days=30
    )
    path = WRITERS[dataset](config, tmp_path / f"{dataset}.csv")
    rows_in, valid, rejected, duplicate = count_dimension_rows(path, dataset)
    assert rejected > 0 and duplicate > 0 and valid > getattr(config, dataset)  # versions, too

    with platform.client("ingest:write", "batches:read") as client:
        accepted = post_file(client, platform, path, dataset)
        assert accepted.status_code == 202, accepted.text
        batch_id = accepted.json()["batch_id"]
        batch = wait_terminal(client, platform, batch_id)

    counts = {"rows_in": rows_in, "rows_valid": valid, "rows_rejected": rejected, "rows_duplicate": duplicate}
    assert batch["counts"] == counts, batch
    stages = {s["stage"]: s["status"] for s in batch["stages"]}
    # quality runs its generic checks on the staged batch (it quarantines or passes, it does not crash)
    assert stages["ingest"] == stages["transform"] == stages["quality"] == "succeeded", batch

    results = asyncio.run(_stage_results(platform.settings.database_url, dataset, batch_id))
    assert [e["counts"] for e in results["staged_events"]] == [counts]
    assert results["raw"] == rows_in
    expected = load_valid_dimension(path, dataset)
    # one staged row per valid (key, updated_at), the last valid line of it in the file
    assert results["staged_rows"] == valid
    assert results["staged"] == {key: record.line for key, record in expected.items()}
    assert all(isinstance(updated, datetime) for _, updated in results["staged"])
    assert len(results["rejects"]) == rejected
    assert all(reasons for reasons in results["rejects"].values())
