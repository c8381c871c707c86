"""Batches: the list, one batch with its stages and quality results, and its rejected rows."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.api import batches
from services.api.schemas import BatchListOut, BatchOut, BatchStatus, RejectsOut
from shared.datasets import Dataset
from shared.db import BIGINT_MAX
from shared.http import BatchReader, DbConnection
from shared.openapi import errors

router = APIRouter(prefix="/v1/batches")
UNKNOWN = errors(e404="no batch has that id (`batch_not_found`)")


@router.get(
    "",
    response_model=BatchListOut,
    responses=errors(
        e400="`until` before `since` (`invalid_range`), or a cursor this API did not give (`invalid_cursor`)",
        e422="an unknown `dataset` or `status`, a time that is not ISO 8601, a `limit` out of 1..500 "
        "(`invalid_request`)",
    ),
)
async def list_batches(
    _: BatchReader,
    conn: DbConnection,
    dataset: Annotated[Dataset | None, Query(description="only this dataset's batches")] = None,
    status: Annotated[BatchStatus | None, Query(description="only batches in this status")] = None,
    since: Annotated[
        datetime | None, Query(description="only batches received at or after this ISO 8601 time (UTC if no offset)")
    ] = None,
    until: Annotated[datetime | None, Query(description="only batches received before this ISO 8601 time")] = None,
    cursor: Annotated[
        str | None, Query(max_length=200, description="the previous page's `next_cursor`, for the page after it")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Any:
    """The batches newest first (by received time, then id), a page at a time: pass the answer's
    ``next_cursor`` as ``cursor`` for the next page, with the same filters. Pages are stable while batches
    arrive: a batch received after the first page was read is on none of the later ones. An unknown
    ``dataset`` or ``status`` is a 422, ``until`` before ``since`` a 400 ``invalid_range``, a cursor this API
    did not give a 400 ``invalid_cursor``."""
    return await batches.batch_list(
        conn, dataset=dataset, status=status, since=since, until=until, cursor=cursor, limit=limit
    )


@router.get("/{batch_id}", response_model=BatchOut, responses=UNKNOWN)
async def get_batch(batch_id: uuid.UUID, _: BatchReader, conn: DbConnection) -> Any:
    return await batches.batch_detail(conn, batch_id)


@router.get("/{batch_id}/rejects", response_model=RejectsOut, responses=UNKNOWN)
async def get_rejects(
    batch_id: uuid.UUID,
    _: BatchReader,
    conn: DbConnection,
    after_line: Annotated[int, Query(ge=0, le=BIGINT_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """The batch's rejected rows in file order, each with its reason codes and original text, a page at a
    time: pass the previous page's ``next_after_line`` as ``after_line``."""
    return await batches.rejects_page(conn, batch_id, after_line=after_line, limit=limit)
