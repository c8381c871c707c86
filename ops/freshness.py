"""Freshness SLAs per dataset, evaluated on a schedule (the reconciler runs :func:`evaluate_and_store`).

Two lags per dataset, each against its SLA from the quality config: the newest event time among the
dataset's loaded batches (``ops.batches.max_event_ts``, written by the quality stage) and the time since
its last batch loaded. The latest evaluation is kept in ``ops.freshness`` for the API's pipeline status;
a breach is logged when it starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.datasets import Dataset
from shared.logs import get_logger
from shared.quality_config import LoadedConfig

log = get_logger(__name__)

LATEST_LOADS = """
SELECT dataset, max(finished_at) AS last_loaded_at, max(max_event_ts) AS max_event_ts, clock_timestamp() AS now
FROM ops.batches WHERE status = 'loaded' GROUP BY dataset
"""

UPSERT = """
INSERT INTO ops.freshness (dataset, evaluated_at, status, severity, config_version, last_loaded_at, max_event_ts,
    load_lag_seconds, event_lag_seconds, max_load_lag_seconds, max_event_lag_seconds, breaches)
VALUES (:dataset, :evaluated_at, :status, :severity, :config_version, :last_loaded_at, :max_event_ts,
    :load_lag_seconds, :event_lag_seconds, :max_load_lag_seconds, :max_event_lag_seconds, :breaches)
ON CONFLICT (dataset) DO UPDATE SET evaluated_at = EXCLUDED.evaluated_at, status = EXCLUDED.status,
    severity = EXCLUDED.severity, config_version = EXCLUDED.config_version,
    last_loaded_at = EXCLUDED.last_loaded_at, max_event_ts = EXCLUDED.max_event_ts,
    load_lag_seconds = EXCLUDED.load_lag_seconds, event_lag_seconds = EXCLUDED.event_lag_seconds,
    max_load_lag_seconds = EXCLUDED.max_load_lag_seconds, max_event_lag_seconds = EXCLUDED.max_event_lag_seconds,
    breaches = EXCLUDED.breaches
RETURNING (SELECT status FROM ops.freshness WHERE dataset = :dataset) AS previous
"""


@dataclass(frozen=True)
class DatasetFreshness:
    dataset: Dataset
    evaluated_at: datetime
    status: str  # fresh | warn | fail (an SLA breached, by its severity) | no_data (nothing loaded yet)
    severity: str
    config_version: str
    last_loaded_at: datetime | None
    max_event_ts: datetime | None
    load_lag_seconds: float | None
    event_lag_seconds: float | None
    max_load_lag_seconds: float | None
    max_event_lag_seconds: float | None
    breaches: list[str]


async def evaluate(conn: AsyncConnection, loaded: LoadedConfig) -> list[DatasetFreshness]:
    """Every dataset with a freshness SLA in the config, judged now."""
    rows = {r.dataset: r for r in (await conn.execute(text(LATEST_LOADS))).all()}
    now = (await conn.execute(text("SELECT clock_timestamp()"))).scalar_one()
    results = []
    for dataset, spec in loaded.config.datasets.items():
        sla = spec.freshness
        if sla is None:
            continue
        row = rows.get(dataset.value)
        last_loaded, newest = (row.last_loaded_at, row.max_event_ts) if row else (None, None)
        load_lag = (now - last_loaded).total_seconds() if last_loaded else None
        event_lag = (now - newest).total_seconds() if newest else None
        breaches = []
        if sla.max_load_lag is not None and load_lag is not None and load_lag > sla.max_load_lag:
            breaches.append(f"last batch loaded {load_lag:.0f} s ago > {sla.max_load_lag:g} s")
        if sla.max_event_lag is not None and event_lag is not None and event_lag > sla.max_event_lag:
            breaches.append(f"newest {sla.column} {event_lag:.0f} s old > {sla.max_event_lag:g} s")
        if last_loaded is None:
            status = "no_data"
        elif breaches:
            status = "fail" if sla.severity == "error" else "warn"
        else:
            status = "fresh"
        results.append(
            DatasetFreshness(
                dataset=dataset,
                evaluated_at=now,
                status=status,
                severity=sla.severity,
                config_version=loaded.version,
                last_loaded_at=last_loaded,
                max_event_ts=newest,
                load_lag_seconds=load_lag,
                event_lag_seconds=event_lag,
                max_load_lag_seconds=sla.max_load_lag,
                max_event_lag_seconds=sla.max_event_lag,
                breaches=breaches,
            )
        )
    return results


async def evaluate_and_store(engine: AsyncEngine, loaded: LoadedConfig) -> list[DatasetFreshness]:
    async with engine.begin() as conn:
        results = await evaluate(conn, loaded)
        for result in results:
            previous = (
                await conn.execute(text(UPSERT), {**result.__dict__, "dataset": result.dataset.value})
            ).scalar_one_or_none()
            if result.status in ("warn", "fail") and previous != result.status:
                log.warning("freshness.breach", dataset=result.dataset.value, breaches=result.breaches)
    return results
