"""The quality stage: run the checks on a staged batch, store the results, pass or quarantine it."""

from __future__ import annotations

import json

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.quality.checks import CONFIG_VERSION, BatchFacts, CheckResult, run_checks
from services.quality.settings import QualitySettings
from shared.batches import BatchRow, record_event
from shared.datasets import Dataset
from shared.events import BatchQuarantined, BatchStaged, BatchValidated, Event
from shared.logs import get_logger
from shared.worker import Resources, run_stage

log = get_logger(__name__)


async def _store_results(conn: AsyncConnection, batch: BatchRow, results: list[CheckResult]) -> None:
    await conn.execute(text("DELETE FROM ops.quality_results WHERE batch_id = :b"), {"b": batch.batch_id})
    for r in results:
        await conn.execute(
            text(
                """INSERT INTO ops.quality_results (batch_id, check_name, check_type, severity, status, observed,
                       threshold, failing_sample, duration_ms, config_version)
                   VALUES (:batch_id, :check_name, :check_type, :severity, :status, :observed, :threshold,
                       CAST(:failing_sample AS jsonb), :duration_ms, :config_version)"""
            ),
            {
                "batch_id": batch.batch_id,
                "check_name": r.check_name,
                "check_type": r.check_type,
                "severity": r.severity,
                "status": r.status,
                "observed": r.observed,
                "threshold": r.threshold,
                "failing_sample": json.dumps(r.failing_sample),
                "duration_ms": r.duration_ms,
                "config_version": CONFIG_VERSION,
            },
        )


def verdict(batch: BatchRow, results: list[CheckResult]) -> Event:
    """Any error-severity failure quarantines the batch; warnings travel with it."""
    dataset = Dataset(batch.dataset)
    failed = [r.check_name for r in results if r.status == "fail"]
    if failed:
        return BatchQuarantined(
            batch_id=batch.batch_id,
            dataset=dataset,
            reason=f"failed checks: {', '.join(failed)}",
            failed_checks=failed,
        )
    warnings = [r.check_name for r in results if r.status == "warn"]
    return BatchValidated(
        batch_id=batch.batch_id, dataset=dataset, outcome="warn" if warnings else "pass", warnings=warnings
    )


async def check_batch(resources: Resources[QualitySettings], event: BatchStaged) -> None:
    async def work(conn: AsyncConnection, batch: BatchRow) -> list[Event]:
        results = await run_checks(conn, BatchFacts(batch.batch_id, Dataset(batch.dataset), batch.header))
        await _store_results(conn, batch, results)
        outcome = verdict(batch, results)
        fields = {"error": outcome.reason} if isinstance(outcome, BatchQuarantined) else {}
        await record_event(conn, outcome, stage="quality", fields=fields)
        log.info("quality.verdict", outcome=outcome.type, checks=len(results))
        return [outcome]

    await run_stage(
        resources,
        batch_id=event.batch_id,
        dataset=event.dataset.value,
        stage="quality",
        expected_status="staged",
        work=work,
    )
