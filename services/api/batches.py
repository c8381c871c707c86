"""Batches as the API shows them: the list, one batch with its stages and quality results, its rejected rows."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.api import repository
from shared.http import ApiError


class UnknownBatch(ApiError):
    """No batch has the id asked for."""

    def __init__(self, batch_id: uuid.UUID) -> None:
        super().__init__(404, "batch_not_found", f"no batch {batch_id}")


def _counts(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.pop(k) for k in ("rows_in", "rows_valid", "rows_rejected", "rows_duplicate")}


async def _existing(conn: AsyncConnection, batch_id: uuid.UUID) -> dict[str, Any]:
    row = await repository.get_batch(conn, batch_id)
    if row is None:
        raise UnknownBatch(batch_id)
    return row


async def batch_list(conn: AsyncConnection, *, dataset: str | None, status: str | None, limit: int) -> dict[str, Any]:
    rows = await repository.list_batches(conn, dataset=dataset, status=status, limit=limit)
    return {"batches": [{**row, "counts": _counts(row)} for row in rows]}


async def batch_detail(conn: AsyncConnection, batch_id: uuid.UUID) -> dict[str, Any]:
    """The batch with its stages, its quality results and the config version that produced them."""
    row = await _existing(conn, batch_id)
    stages = await repository.batch_stages(conn, batch_id)
    quality = await repository.quality_results(conn, batch_id)
    config = await repository.quality_config_of(conn, batch_id, row["dataset"])
    return {**row, "counts": _counts(row), "stages": stages, "quality": quality, "quality_config": config}


async def rejects_page(conn: AsyncConnection, batch_id: uuid.UUID, *, after_line: int, limit: int) -> dict[str, Any]:
    """A page of the batch's rejected rows; ``next_after_line`` is None on the last page."""
    row = await _existing(conn, batch_id)
    page = await repository.rejects(conn, batch_id, row["dataset"], after_line=after_line, limit=limit)
    return {
        "batch_id": batch_id,
        "dataset": row["dataset"],
        "rows_rejected": row["rows_rejected"],
        "rejects": page,
        "next_after_line": page[-1]["source_line"] if len(page) == limit else None,
    }
