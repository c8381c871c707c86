"""Event contracts (DESIGN §6): one pydantic class per event type, a discriminated union, one adapter.

``batch.received → batch.staged → batch.validated | batch.quarantined → batch.loaded``, and
``batch.failed`` at any stage. Delivery is at least once; consumers are idempotent on (batch_id, stage).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from shared.datasets import Dataset


def _now() -> datetime:
    return datetime.now(UTC)


class EventBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    batch_id: uuid.UUID
    dataset: Dataset
    occurred_at: datetime = Field(default_factory=_now)


class ObjectRef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    bucket: str
    key: str


class RowCounts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    rows_in: int = Field(ge=0)
    rows_valid: int = Field(ge=0)
    rows_rejected: int = Field(ge=0)
    rows_duplicate: int = Field(ge=0)


class BatchReceived(EventBase):
    type: Literal["batch.received"] = "batch.received"
    object: ObjectRef
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)
    file_format: str


class BatchStaged(EventBase):
    type: Literal["batch.staged"] = "batch.staged"
    counts: RowCounts
    parquet_prefix: str


class BatchValidated(EventBase):
    type: Literal["batch.validated"] = "batch.validated"
    outcome: Literal["pass", "warn"]
    warnings: list[str] = Field(default_factory=list)


class BatchQuarantined(EventBase):
    type: Literal["batch.quarantined"] = "batch.quarantined"
    reason: str
    failed_checks: list[str]


class BatchLoaded(EventBase):
    type: Literal["batch.loaded"] = "batch.loaded"
    facts_upserted: int = Field(ge=0)
    dates_refreshed: int = Field(ge=0)


class BatchFailed(EventBase):
    type: Literal["batch.failed"] = "batch.failed"
    stage: Literal["ingest", "transform", "quality", "warehouse"]
    reason: str


Event = Annotated[
    BatchReceived | BatchStaged | BatchValidated | BatchQuarantined | BatchLoaded | BatchFailed,
    Field(discriminator="type"),
]
EventAdapter: TypeAdapter[Event] = TypeAdapter(Event)

# The batch status each event records; ops.batches.status only ever takes these values.
STATUS_AFTER: dict[str, str] = {
    "batch.received": "received",
    "batch.staged": "staged",
    "batch.validated": "validated",
    "batch.quarantined": "quarantined",
    "batch.loaded": "loaded",
    "batch.failed": "failed",
}
TERMINAL_STATUSES = frozenset({"loaded", "quarantined", "failed"})


def parse_event(payload: dict[str, object] | str | bytes) -> Event:
    if isinstance(payload, dict):
        return EventAdapter.validate_python(payload)
    return EventAdapter.validate_json(payload)


class AnalyticsBackfilled(BaseModel):
    """Not a batch's event: an admin's backfill rebuilt a date range's analytics (services/api/backfill.py).
    It is only broadcast on the live stream; the audit log keeps the record."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["analytics.backfilled"] = "analytics.backfilled"
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    occurred_at: datetime = Field(default_factory=_now)
    date_from: date
    date_to: date
    changed: bool
    # table -> {"changed": n, "inserted": n, "deleted": n}
    tables: dict[str, dict[str, int]]
    audit_id: int


StreamEvent = Event | AnalyticsBackfilled


def parse_stream_event(payload: dict[str, object]) -> StreamEvent:
    """A message of the live stream: a batch's event or an operation's."""
    if payload.get("type") == "analytics.backfilled":
        return AnalyticsBackfilled.model_validate(payload)
    return parse_event(payload)
