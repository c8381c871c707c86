"""The quality stage: run the checks on a staged batch, store the results, pass or quarantine it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from services.quality import repository
from services.quality.checks import BatchFacts, CheckResult, run_checks
from services.quality.settings import QualitySettings
from shared.batches import BatchRow, record_event
from shared.datasets import Dataset
from shared.events import BatchQuarantined, BatchStaged, BatchValidated, Event
from shared.logs import get_logger
from shared.quality_config import LoadedConfig, load_quality_config
from shared.worker import Resources, run_stage

log = get_logger(__name__)


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


async def _record_event_time(conn: AsyncConnection, batch: BatchRow, loaded: LoadedConfig) -> None:
    """The batch's newest event time (the freshness SLA's column): what the scheduled freshness reads."""
    dataset = Dataset(batch.dataset)
    sla = loaded.config.datasets[dataset].freshness if dataset in loaded.config.datasets else None
    if sla is None:
        return
    await repository.record_event_time(conn, batch.batch_id, dataset, sla.column)


async def check_batch(resources: Resources[QualitySettings], event: BatchStaged) -> None:
    async def work(conn: AsyncConnection, batch: BatchRow) -> list[Event]:
        # Read for every batch: an edited file applies to the next batch; an invalid one fails this batch
        # with the reason (re-run it once the file is fixed).
        loaded = load_quality_config(resources.settings.quality_config)
        dataset = Dataset(batch.dataset)
        drift = await repository.schema_drift(conn, batch.batch_id)
        facts = BatchFacts(batch.batch_id, dataset, batch.header, drift)
        results = await run_checks(conn, facts, loaded.config.checks_for(dataset))
        await repository.remember_config(conn, loaded)
        await repository.store_results(conn, batch.batch_id, results, loaded.version)
        await _record_event_time(conn, batch, loaded)
        outcome = verdict(batch, results)
        fields = {"error": outcome.reason} if isinstance(outcome, BatchQuarantined) else {}
        await record_event(conn, outcome, stage="quality", fields=fields)
        log.info("quality.verdict", outcome=outcome.type, checks=len(results), config_version=loaded.version)
        return [outcome]

    await run_stage(
        resources,
        batch_id=event.batch_id,
        dataset=event.dataset.value,
        stage="quality",
        expected_status="staged",
        work=work,
    )
