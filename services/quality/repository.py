"""SQL of the quality stage's bookkeeping: the batch's drift and event time, the results, the config that ran.

The checks' own statements live with the checks (services.quality.checks).
"""

from __future__ import annotations

import json
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.quality.checks import CheckResult
from shared.datasets import Dataset
from shared.quality_config import LoadedConfig


async def schema_drift(conn: AsyncConnection, batch_id: uuid.UUID) -> list[str]:
    """The columns the file had beyond the contract, as ingest recorded them."""
    drift = (
        await conn.execute(text("SELECT schema_drift FROM ops.batches WHERE batch_id = :b"), {"b": batch_id})
    ).scalar_one()
    return list(drift or [])


async def store_results(
    conn: AsyncConnection, batch_id: uuid.UUID, results: list[CheckResult], config_version: str
) -> None:
    await conn.execute(text("DELETE FROM ops.quality_results WHERE batch_id = :b"), {"b": batch_id})
    for r in results:
        await conn.execute(
            text(
                """INSERT INTO ops.quality_results (batch_id, check_name, check_type, severity, status, observed,
                       threshold, failing_sample, duration_ms, config_version)
                   VALUES (:batch_id, :check_name, :check_type, :severity, :status, :observed, :threshold,
                       CAST(:failing_sample AS jsonb), :duration_ms, :config_version)"""
            ),
            {
                "batch_id": batch_id,
                "check_name": r.check_name,
                "check_type": r.check_type,
                "severity": r.severity,
                "status": r.status,
                "observed": r.observed,
                "threshold": r.threshold,
                "failing_sample": json.dumps(r.failing_sample),
                "duration_ms": r.duration_ms,
                "config_version": config_version,
            },
        )


async def remember_config(conn: AsyncConnection, loaded: LoadedConfig) -> None:
    """Keep each config version that ran, so a batch's results can be read beside the rules that made them."""
    await conn.execute(
        text(
            """INSERT INTO ops.quality_configs (config_version, declared_version, document)
               VALUES (:version, :declared, CAST(:document AS jsonb)) ON CONFLICT (config_version) DO NOTHING"""
        ),
        {
            "version": loaded.version,
            "declared": loaded.config.version,
            "document": loaded.config.model_dump_json(by_alias=True),
        },
    )


async def record_event_time(conn: AsyncConnection, batch_id: uuid.UUID, dataset: Dataset, column: str) -> None:
    """The batch's newest ``column`` (a contract column, matched by the config) as its max_event_ts."""
    await conn.execute(
        text(
            f"""UPDATE ops.batches SET max_event_ts =
                    (SELECT max({column}) FROM staging.{dataset.value} WHERE batch_id = :batch_id)
                WHERE batch_id = :batch_id"""
        ),
        {"batch_id": batch_id},
    )
