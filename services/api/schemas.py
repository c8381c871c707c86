"""Response schemas of the API. Money is a JSON number exact to the cent."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

# A Decimal rounded to cents and written as a JSON number: float(Decimal) is the shortest repr that reads
# back as the same two-decimal value for any amount below 2**53 cents.
Money = Annotated[Decimal, PlainSerializer(lambda v: float(v), return_type=float, when_used="json")]

BatchStatus = Literal["received", "staged", "validated", "quarantined", "loaded", "failed"]


class Schema(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class RowCountsOut(Schema):
    rows_in: int | None
    rows_valid: int | None
    rows_rejected: int | None
    rows_duplicate: int | None


class StageOut(Schema):
    stage: str
    status: Literal["running", "succeeded", "failed"]
    attempts: int
    started_at: datetime
    finished_at: datetime | None
    duration_ms: float | None
    error: str | None


class QualityResultOut(Schema):
    check_name: str
    check_type: str
    severity: Literal["warn", "error"]
    status: Literal["pass", "warn", "fail"]
    observed: str | None
    threshold: str | None
    failing_sample: list[Any]
    duration_ms: float
    config_version: str


class BatchOut(Schema):
    batch_id: uuid.UUID
    dataset: str
    status: BatchStatus
    file_name: str
    sha256: str
    size_bytes: int
    schema_drift: list[str]
    received_at: datetime
    finished_at: datetime | None
    counts: RowCountsOut
    stages: list[StageOut]
    quality: list[QualityResultOut]
    error: str | None


class BatchSummaryOut(Schema):
    batch_id: uuid.UUID
    dataset: str
    status: BatchStatus
    file_name: str
    received_at: datetime
    finished_at: datetime | None
    counts: RowCountsOut
    error: str | None


class BatchListOut(Schema):
    batches: list[BatchSummaryOut]


class DayKpisOut(Schema):
    date: date
    orders: int
    revenue: Money
    units: int
    avg_order_value: Money
    distinct_customers: int
    cancelled: int
    refunded: int


class DailyKpisOut(Schema):
    from_: date = Field(alias="from", serialization_alias="from")
    to: date
    days: list[DayKpisOut]
