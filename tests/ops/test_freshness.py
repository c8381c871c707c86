"""The scheduled freshness evaluation (ops/freshness.py) that the reconciler runs for each dataset's SLA."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from ops.freshness import evaluate
from shared.db import create_engine
from shared.quality_config import LoadedConfig, QualityConfig
from shared.settings import PlatformSettings
from tests.batch_rows import insert_batch

NOW = datetime.now(UTC)


def test_scheduled_freshness_of_a_dataset(settings: PlatformSettings) -> None:
    """The SLA evaluation the reconciler runs: lags of the dataset's newest loaded data and last load."""

    def config(severity: str, max_load_lag: str) -> QualityConfig:
        return QualityConfig.model_validate(
            {
                "version": "t",
                "datasets": {
                    "sales": {
                        "freshness": {
                            "column": "transaction_ts",
                            "max_load_lag": max_load_lag,
                            "max_event_lag": "3650d",
                            "severity": severity,
                        }
                    }
                },
            }
        )

    async def go() -> list[str]:
        conn = await asyncpg.connect(settings.database_url)
        try:
            await insert_batch(conn, status="loaded", finished_at=datetime.now(UTC), max_event_ts=NOW)
        finally:
            await conn.close()
        engine = create_engine(settings)
        statuses = []
        try:
            async with engine.connect() as sa_conn:
                for severity, lag in (("warn", "1h"), ("warn", "1s"), ("error", "0.001s")):
                    await asyncio.sleep(0.01)
                    loaded = load_quality_config_from(config(severity, lag))
                    [result] = await evaluate(sa_conn, loaded)
                    assert result.load_lag_seconds is not None and result.load_lag_seconds < 3600
                    statuses.append(result.status)
        finally:
            await engine.dispose()
        return statuses

    statuses = asyncio.run(go())
    assert statuses[0] == "fresh" and statuses[2] == "fail"


def load_quality_config_from(config: QualityConfig) -> Any:
    return LoadedConfig(config, f"{config.version}+test", Path("memory"))
