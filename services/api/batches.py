"""Batches as the API shows them: the list, one batch with its stages and quality results, its rejected rows."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
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


def encode_cursor(row: dict[str, Any]) -> str:
    """The opaque cursor of the page after ``row``: its place in the list's order."""
    place = json.dumps([row["received_at"].isoformat(), str(row["batch_id"])], separators=(",", ":"))
    return base64.urlsafe_b64encode(place.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        received_at, batch_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        place = (datetime.fromisoformat(received_at), uuid.UUID(batch_id))
    except (ValueError, TypeError) as exc:
        raise ApiError(400, "invalid_cursor", "the cursor is not one this API gave", {"cursor": cursor}) from exc
    if place[0].tzinfo is None:
        raise ApiError(400, "invalid_cursor", "the cursor is not one this API gave", {"cursor": cursor})
    return place


def _utc(moment: datetime | None) -> datetime | None:
    # ISO 8601 without an offset is UTC, as everywhere in the platform.
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


async def batch_list(
    conn: AsyncConnection,
    *,
    dataset: str | None,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
    cursor: str | None,
    limit: int,
) -> dict[str, Any]:
    """A page of batches, newest first; ``next_cursor`` is None on the last page."""
    since, until = _utc(since), _utc(until)
    if since is not None and until is not None and until < since:
        raise ApiError(400, "invalid_range", "'until' is before 'since'")
    before = decode_cursor(cursor) if cursor is not None else None
    rows = await repository.list_batches(
        conn, dataset=dataset, status=status, since=since, until=until, before=before, limit=limit
    )
    next_cursor = encode_cursor(rows[-1]) if len(rows) == limit else None
    return {"batches": [{**row, "counts": _counts(row)} for row in rows], "next_cursor": next_cursor}


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
