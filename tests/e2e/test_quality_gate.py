"""The quality gate through the running platform: an error-severity failure quarantines a batch, an admin
release loads it (once), a config edit applies to the next batch and is recorded, and a re-run after the
config is fixed loads a quarantined batch."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.conftest import Platform
from tests.e2e.test_sales_pipeline import post_file, wait_terminal

pytestmark = pytest.mark.e2e

HEADER = "transaction_id,transaction_ts,customer_id,product_id,quantity,unit_price,total_amount,payment_method,status\n"
STRICT_CHECK = """
[[datasets.sales.checks]]
name = "range.e2e_quantity"
type = "range"
column = "quantity"
max = 1
severity = "error"
"""


def sales_file(path: Path, prefix: str, rows: int) -> Path:
    lines = [f"{prefix}-{i},2023-07-0{1 + i % 5}T10:00:00Z,C{i},P1,2,10.00,20.00,pix,completed\n" for i in range(rows)]
    path.write_text(HEADER + "".join(lines))
    return path


def fetch(platform: Platform, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(platform.settings.database_url)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(go())


def versions(batch: dict[str, Any]) -> set[str]:
    return {q["config_version"] for q in batch["quality"]}


def test_gate_release_config_change_and_rerun(platform: Platform, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    original = platform.quality_config.read_text()
    with platform.client("ingest:write", "batches:read", "admin") as client:
        accepted = post_file(client, platform, sales_file(tmp_path / "a.csv", f"QA-{run}", 3)).raise_for_status()
        first = wait_terminal(client, platform, accepted.json()["batch_id"])
        assert first["status"] == "loaded", first
        [first_version] = versions(first)
        assert first["quality_config"]["version"] == first_version

        strict = original.replace('version = "', 'version = "e2e-strict-', 1) + STRICT_CHECK
        platform.quality_config.write_text(strict)
        try:
            # The edit applies to the next batch, with no restart: quarantined, the check named.
            accepted = post_file(client, platform, sales_file(tmp_path / "b.csv", f"QB-{run}", 4)).raise_for_status()
            held_id = accepted.json()["batch_id"]
            held = wait_terminal(client, platform, held_id)
            assert held["status"] == "quarantined", held
            assert "range.e2e_quantity" in held["error"]
            [strict_version] = versions(held)
            assert strict_version != first_version and strict_version.startswith("e2e-strict-")
            failed = {q["check_name"]: q for q in held["quality"] if q["status"] == "fail"}
            assert set(failed) == {"range.e2e_quantity"} and failed["range.e2e_quantity"]["failing_sample"]
            assert "range.e2e_quantity" in {c["name"] for c in held["quality_config"]["checks"]}
            listed = client.get(f"{platform.api}/v1/quality/checks").raise_for_status().json()
            assert listed["version"] == strict_version
            # Nothing of it reached the warehouse; its raw and staging rows are kept.
            assert not fetch(platform, "SELECT 1 FROM processed.fact_sales WHERE batch_id = $1", uuid.UUID(held_id))
            assert len(fetch(platform, "SELECT 1 FROM staging.sales WHERE batch_id = $1", uuid.UUID(held_id))) == 4

            accepted = post_file(client, platform, sales_file(tmp_path / "c.csv", f"QC-{run}", 2)).raise_for_status()
            rerun_id = accepted.json()["batch_id"]
            assert wait_terminal(client, platform, rerun_id)["status"] == "quarantined"

            released = client.post(f"{platform.api}/v1/batches/{held_id}/release", json={"reason": "e2e"})
            assert released.status_code == 200, released.text
            loaded = wait_terminal(client, platform, held_id)
            assert loaded["status"] == "loaded", loaded
        finally:
            platform.quality_config.write_text(original)

        # Re-run after the config change: the same batch passes under the config in effect now.
        rerun = client.post(f"{platform.api}/v1/batches/{rerun_id}/rerun-quality", json={"reason": "rule dropped"})
        assert rerun.status_code == 202, rerun.text
        passed = wait_terminal(client, platform, rerun_id)
        assert passed["status"] == "loaded", passed
        assert versions(passed) == {first_version}
        stages = {s["stage"]: s for s in passed["stages"]}
        assert stages["quality"]["attempts"] == 2 and stages["warehouse"]["attempts"] == 1

    # Loaded once: the reconciler has had time to re-publish anything; one load, one set of facts.
    time.sleep(3)
    held_uuid = uuid.UUID(held_id)
    assert len(fetch(platform, "SELECT 1 FROM processed.fact_sales WHERE batch_id = $1", held_uuid)) == 4
    loads = fetch(platform, "SELECT 1 FROM ops.batch_events WHERE batch_id = $1 AND type = 'batch.loaded'", held_uuid)
    assert len(loads) == 1
    [warehouse] = fetch(
        platform, "SELECT attempts FROM ops.batch_stages WHERE batch_id = $1 AND stage = 'warehouse'", held_uuid
    )
    assert warehouse["attempts"] == 1
    audit = fetch(
        platform,
        "SELECT action FROM ops.audit_log WHERE target = ANY($1::text[]) ORDER BY audit_id",
        [held_id, rerun_id],
    )
    assert [a["action"] for a in audit] == ["batch.release", "batch.rerun_quality"]


def test_freshness_is_evaluated_on_a_schedule(platform: Platform) -> None:
    """The reconciler evaluates every dataset's SLA without a batch arriving; the pipeline status shows it."""
    with platform.client("batches:read") as client:
        deadline = time.monotonic() + 30
        while True:
            status = client.get(f"{platform.api}/v1/pipeline/status").raise_for_status().json()
            if {f["dataset"] for f in status["freshness"]} >= {"sales", "customers", "products"}:
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.5)
        first = {f["dataset"]: f["evaluated_at"] for f in status["freshness"]}
        time.sleep(2.5)
        later = client.get(f"{platform.api}/v1/pipeline/status").raise_for_status().json()
    assert all(f["evaluated_at"] > first[f["dataset"]] for f in later["freshness"])
    assert {q["service"] for q in later["queues"]} == {"transform", "quality", "warehouse"}


def test_pipeline_status_lists_the_running_workers_by_service(platform: Platform) -> None:
    with platform.client("batches:read") as client:
        status = client.get(f"{platform.api}/v1/pipeline/status").raise_for_status().json()
    served = {service for worker in status["workers"] for service in worker["services"]}
    assert served == {"transform", "quality", "warehouse"}, status["workers"]
    assert all("@" in worker["name"] for worker in status["workers"])
