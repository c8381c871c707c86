"""The warehouse stage: one transaction per batch loads the star schema and the analytics it moves."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from services.warehouse.load import load
from services.warehouse.settings import WarehouseSettings
from shared.batches import BatchRow, record_event
from shared.datasets import Dataset
from shared.events import BatchLoaded, BatchValidated, Event
from shared.logs import get_logger
from shared.worker import Resources, run_stage

log = get_logger(__name__)


async def load_batch(resources: Resources[WarehouseSettings], event: BatchValidated) -> None:
    async def work(conn: AsyncConnection, batch: BatchRow) -> list[Event]:
        dataset = Dataset(batch.dataset)
        result = await load(conn, dataset.value, batch.batch_id, resources.settings.bulk_policy)
        loaded = BatchLoaded(
            batch_id=batch.batch_id, dataset=dataset, facts_upserted=result.facts, dates_refreshed=result.dates
        )
        await record_event(conn, loaded, stage="warehouse")
        log.info(
            "warehouse.loaded",
            facts=result.facts,
            dates=result.dates,
            versions=result.versions,
            versions_removed=result.removed,
        )
        return [loaded]

    await run_stage(
        resources,
        batch_id=event.batch_id,
        dataset=event.dataset.value,
        stage="warehouse",
        expected_status="validated",
        work=work,
    )
