"""Batches: the list, one batch with its stages and quality results, and its rejected rows."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.api import batches
from services.api.schemas import BatchListOut, BatchOut, BatchStatus, RejectsOut
from shared.datasets import Dataset
from shared.db import BIGINT_MAX
from shared.http import BatchReader, DbConnection

router = APIRouter(prefix="/v1/batches")


@router.get("", response_model=BatchListOut)
async def list_batches(
    _: BatchReader,
    conn: DbConnection,
    dataset: Dataset | None = None,
    status: BatchStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Any:
    return await batches.batch_list(conn, dataset=dataset, status=status, limit=limit)


@router.get("/{batch_id}", response_model=BatchOut)
async def get_batch(batch_id: uuid.UUID, _: BatchReader, conn: DbConnection) -> Any:
    return await batches.batch_detail(conn, batch_id)


@router.get("/{batch_id}/rejects", response_model=RejectsOut)
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
