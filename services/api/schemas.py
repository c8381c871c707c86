"""Response schemas of the API. Money is a JSON number exact to the cent."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer


@dataclass(frozen=True)
class Places:
    """The decimal places of an exact decimal field: CSV exports write it with that many, Parquet as a
    decimal128 of that scale (services/api/exports.py)."""

    digits: int


# A Decimal rounded to cents and written as a JSON number: float(Decimal) is the shortest repr that reads
# back as the same two-decimal value for any amount below 2**53 cents.
Money = Annotated[Decimal, PlainSerializer(lambda v: float(v), return_type=float, when_used="json"), Places(2)]

# A ratio to four decimals, written as a JSON number.
Rate = Annotated[Decimal, PlainSerializer(lambda v: float(v), return_type=float, when_used="json"), Places(4)]

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
    status: Literal["running", "interrupted", "succeeded", "failed"]
    attempts: int
    # Attempts whose worker died before they finished; at the limit the batch ends failed.
    interruptions: int
    started_at: datetime
    # When the running attempt last said it was alive, and who runs it (host:pid).
    heartbeat_at: datetime | None
    worker: str | None
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


class QualityConfigInEffectOut(Schema):
    version: str
    declared_version: str
    checks: list[dict[str, Any]]
    freshness: dict[str, Any] | None


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
    quality_config: QualityConfigInEffectOut | None = Field(
        description="The quality config version the results come from, with its rules for the batch's dataset"
    )
    error: str | None
    attempt: int = Field(description="the batch's run through the stages: 1, then one more per replay")


class BatchSummaryOut(Schema):
    batch_id: uuid.UUID
    dataset: str
    status: BatchStatus
    file_name: str
    received_at: datetime
    finished_at: datetime | None
    counts: RowCountsOut
    error: str | None


class RejectOut(Schema):
    source_line: int = Field(description="the file line the record starts on (CSV: the header is line 1)")
    reasons: list[str] = Field(description="every reason code that applies, e.g. invalid_quantity")
    record: dict[str, Any] = Field(description="the record's original text, column by column")


class RejectsOut(Schema):
    batch_id: uuid.UUID
    dataset: str
    rows_rejected: int | None
    rejects: list[RejectOut]
    next_after_line: int | None = Field(description="pass as after_line for the next page; null on the last page")


class BatchListOut(Schema):
    batches: list[BatchSummaryOut]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null on the last page")


class RangeOut(Schema):
    from_: date = Field(alias="from", serialization_alias="from")
    to: date


class DayKpisOut(Schema):
    date: date
    orders: int
    revenue: Money
    units: int
    avg_order_value: Money
    distinct_customers: int
    cancelled: int
    refunded: int


Grain = Literal["day", "week", "month"]


class DailyKpisOut(RangeOut):
    grain: Grain = Field(default="day", description="the period each of `days` is: a day, an ISO week or a month")
    days: list[DayKpisOut] = Field(
        description="oldest first; with a grain of week or month, `date` is the period's first day"
    )


class KpiSummaryOut(RangeOut):
    orders: int = Field(description="completed transactions")
    revenue: Money = Field(description="sum of total_amount over completed transactions")
    units: int = Field(description="sum of quantity over completed transactions")
    avg_order_value: Money = Field(description="revenue / orders")
    distinct_customers: int = Field(description="customers with a completed transaction in the range")
    transactions: int = Field(description="all transactions, whatever their status")
    cancelled: int
    refunded: int
    cancellation_rate: Rate = Field(description="cancelled / transactions")
    refund_rate: Rate = Field(description="refunded / transactions")
    days_with_sales: int


class Measures(Schema):
    orders: int
    revenue: Money
    units: int
    transactions: int


class CategoryOut(Measures):
    category: str | None = Field(description="the product's category as of the sale")


class CategoriesOut(RangeOut):
    categories: list[CategoryOut]


class PaymentMethodOut(Measures):
    payment_method: str | None
    cancelled: int
    refunded: int


class PaymentMethodsOut(RangeOut):
    payment_methods: list[PaymentMethodOut]


class StateOut(Measures):
    country: str | None = Field(description="the customer's country as of the sale")
    state: str | None = Field(description="the customer's state as of the sale")


class StatesOut(RangeOut):
    states: list[StateOut]


class TopProductOut(Schema):
    product_id: str
    product_name: str | None = Field(description="the product's current name")
    category: str | None = Field(description="the product's current category")
    orders: int
    revenue: Money
    units: int
    cancelled: int
    refunded: int


class TopProductsOut(RangeOut):
    products: list[TopProductOut]


class DatasetChecksOut(Schema):
    checks: list[dict[str, Any]]
    freshness: dict[str, Any] | None


class QualityChecksOut(Schema):
    version: str = Field(description="The file's declared version + a hash of its content, as results record it")
    declared_version: str
    check_types: list[str]
    datasets: dict[str, DatasetChecksOut]


class AdminActionIn(Schema):
    reason: str = Field(default="", max_length=2000)


class AdminActionOut(Schema):
    batch_id: uuid.UUID
    action: Literal["release", "rerun-quality"]
    status: BatchStatus
    event_id: uuid.UUID
    audit_id: int


class FreshnessOut(Schema):
    dataset: str
    status: Literal["fresh", "warn", "fail", "no_data"]
    severity: Literal["warn", "error"]
    evaluated_at: datetime
    config_version: str
    last_loaded_at: datetime | None
    max_event_ts: datetime | None
    load_lag_seconds: float | None
    event_lag_seconds: float | None
    max_load_lag_seconds: float | None
    max_event_lag_seconds: float | None
    breaches: list[str]


class QueueOut(Schema):
    service: str
    queue: str
    length: int | None = Field(description="Messages waiting; null when the broker cannot be reached")


class WorkerOut(Schema):
    name: str = Field(description="the Celery node, e.g. transform@host")
    services: list[str] = Field(description="the platform services whose queues it consumes")


class PipelineStatusOut(Schema):
    freshness: list[FreshnessOut]
    queues: list[QueueOut]
    workers: list[WorkerOut] | None = Field(
        description="workers that answered within a second; null when the broker cannot be reached"
    )
    batches_by_status: dict[str, int]
    quality_config_version: str | None


class ReplayOut(Schema):
    batch_id: uuid.UUID
    action: Literal["replay"]
    attempt: int = Field(description="the batch's run through the stages this replay is (1 was its first)")
    status: BatchStatus
    event_id: uuid.UUID = Field(description="the attempt's batch.received event, which starts the transform")
    audit_id: int
    replayed: bool = Field(description="false when the request found this attempt running already and started none")


class BackfillIn(Schema):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    from_: date = Field(alias="from", description="first UTC date rebuilt")
    to: date = Field(description="last UTC date rebuilt (inclusive)")
    reason: str = Field(default="", max_length=2000)


class TableChangesOut(Schema):
    table: str
    changed: int = Field(description="rows whose figures differed from the recomputation and were rewritten")
    inserted: int = Field(description="rows the recomputation has and the table lacked")
    deleted: int = Field(description="rows the table had and the recomputation has not")


class BackfillOut(Schema):
    from_: date = Field(alias="from")
    to: date
    facts: int = Field(description="facts of processed.fact_sales in the range the analytics were recomputed from")
    tables: list[TableChangesOut]
    changed: bool = Field(description="whether any row was written")
    audit_id: int
    event_id: uuid.UUID = Field(description="the analytics.backfilled event broadcast on the live stream")


Scope = Literal["ingest:write", "kpis:read", "batches:read", "admin"]


class KeyOut(Schema):
    """An API key without its secret; ``prefix`` is the part after ``sdp_`` that a key starts with."""

    key_id: uuid.UUID
    name: str
    prefix: str
    scopes: list[Scope]
    created_at: datetime
    last_used_at: datetime | None = Field(description="recorded at most once a minute per key")
    revoked_at: datetime | None
    expires_at: datetime | None = Field(description="a rotated key is refused from then on")
    replaced_by: uuid.UUID | None = Field(description="the key rotating this one created")
    active: bool = Field(description="whether the key is accepted now")


class KeysOut(Schema):
    keys: list[KeyOut]


class KeyIn(Schema):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1)


class KeyRevokeIn(Schema):
    reason: str = Field(default="", max_length=2000)


class KeySecretOut(Schema):
    key: KeyOut
    secret: str = Field(description="the key itself, shown this once: only its sha256 is stored")
    previous: KeyOut | None = Field(default=None, description="the rotated key, valid until its expires_at")
