"""Event contracts: every event round-trips, the discriminator is strict, the JSON schema is pinned, and
every routed event reaches a task its consumer service really registers."""

from __future__ import annotations

import importlib
import json
import typing
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from shared.bus import ROUTES, SERVICES
from shared.datasets import Dataset
from shared.events import (
    STATUS_AFTER,
    TERMINAL_STATUSES,
    BatchFailed,
    BatchLoaded,
    BatchQuarantined,
    BatchReceived,
    BatchStaged,
    BatchValidated,
    Event,
    EventAdapter,
    ObjectRef,
    RowCounts,
    parse_event,
)

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "contracts" / "events.schema.json"
REGENERATE = (
    '.venv/bin/python -c "import json, pathlib; from shared.events import EventAdapter; '
    "pathlib.Path('tests/contracts/events.schema.json').write_text("
    "json.dumps(EventAdapter.json_schema(), indent=2, sort_keys=True) + '\\n')\""
)

BATCH_ID = uuid.UUID("0b6f4c1e-5d0e-4a43-9c55-7d1d2f3b9a10")
EVENT_ID = uuid.UUID("6a1f3c9d-2b7e-4f10-8e2a-4c5d6e7f8a9b")
# A non-UTC offset with microseconds: the round trip must keep the instant exactly.
OCCURRED_AT = datetime(2026, 3, 14, 15, 9, 26, 535897, tzinfo=timezone(timedelta(hours=5, minutes=30)))
SHA = "0123456789abcdef" * 4


def _union_members() -> tuple[type[BaseModel], ...]:
    union, *_ = typing.get_args(Event)
    return typing.get_args(union)


EVENT_CLASSES = _union_members()

SAMPLES: dict[type[BaseModel], BaseModel] = {
    BatchReceived: BatchReceived(
        event_id=EVENT_ID,
        batch_id=BATCH_ID,
        dataset=Dataset.sales,
        occurred_at=OCCURRED_AT,
        object=ObjectRef(bucket="raw-data", key="sales/batch_id=x/sales.csv"),
        sha256=SHA,
        size_bytes=1234,
        file_format="csv",
    ),
    BatchStaged: BatchStaged(
        event_id=EVENT_ID,
        batch_id=BATCH_ID,
        dataset=Dataset.sales,
        occurred_at=OCCURRED_AT,
        counts=RowCounts(rows_in=10, rows_valid=7, rows_rejected=2, rows_duplicate=1),
        parquet_prefix="processed-data/sales/batch_id=x",
    ),
    BatchValidated: BatchValidated(
        event_id=EVENT_ID,
        batch_id=BATCH_ID,
        dataset=Dataset.customers,
        occurred_at=OCCURRED_AT,
        outcome="warn",
        warnings=["null_rate:email"],
    ),
    BatchQuarantined: BatchQuarantined(
        event_id=EVENT_ID,
        batch_id=BATCH_ID,
        dataset=Dataset.products,
        occurred_at=OCCURRED_AT,
        reason="2 error checks failed",
        failed_checks=["unique:transaction_id", "not_null:product_id"],
    ),
    BatchLoaded: BatchLoaded(
        event_id=EVENT_ID,
        batch_id=BATCH_ID,
        dataset=Dataset.sales,
        occurred_at=OCCURRED_AT,
        facts_upserted=7,
        dates_refreshed=3,
    ),
    BatchFailed: BatchFailed(
        event_id=EVENT_ID,
        batch_id=BATCH_ID,
        dataset=Dataset.sales,
        occurred_at=OCCURRED_AT,
        stage="transform",
        reason="ValueError: boom",
    ),
}


def _type_of(cls: type[BaseModel]) -> str:
    default = cls.model_fields["type"].default
    assert isinstance(default, str)
    return default


EVENT_TYPES = {_type_of(cls) for cls in EVENT_CLASSES}


def _payload(cls: type[BaseModel]) -> dict[str, Any]:
    return SAMPLES[cls].model_dump(mode="json")


def test_every_union_member_has_a_sample() -> None:
    assert set(SAMPLES) == set(EVENT_CLASSES)
    assert len(EVENT_TYPES) == len(EVENT_CLASSES), "two event classes share a type"


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda c: c.__name__)
def test_round_trip_through_the_adapter(cls: type[BaseModel]) -> None:
    event = SAMPLES[cls]
    data = EventAdapter.dump_json(event)  # type: ignore[arg-type]
    assert json.loads(data)["type"] == _type_of(cls)
    back = EventAdapter.validate_json(data)
    assert type(back) is cls
    assert back == event
    assert back.occurred_at == OCCURRED_AT
    assert back.event_id == EVENT_ID and back.batch_id == BATCH_ID
    # The other entry points agree: python dicts, str and bytes.
    assert parse_event(json.loads(data)) == event
    assert parse_event(data.decode()) == event
    assert parse_event(data) == event


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda c: c.__name__)
def test_discriminator_picks_the_class_named_by_type(cls: type[BaseModel]) -> None:
    parsed = EventAdapter.validate_python(_payload(cls))
    assert type(parsed) is cls
    assert parsed.type == _type_of(cls)


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda c: c.__name__)
def test_type_decides_the_class_not_the_fields(cls: type[BaseModel]) -> None:
    """A payload that fits one class but names another type is rejected, not silently re-routed."""
    other = next(t for t in sorted(EVENT_TYPES) if t != _type_of(cls))
    payload = {**_payload(cls), "type": other}
    with pytest.raises(ValidationError):
        EventAdapter.validate_python(payload)


def test_unknown_type_is_rejected() -> None:
    payload = {**_payload(BatchLoaded), "type": "batch.exploded"}
    with pytest.raises(ValidationError) as info:
        EventAdapter.validate_python(payload)
    assert info.value.errors()[0]["type"] == "union_tag_invalid"


def test_missing_type_is_rejected() -> None:
    payload = _payload(BatchLoaded)
    del payload["type"]
    with pytest.raises(ValidationError) as info:
        EventAdapter.validate_python(payload)
    assert info.value.errors()[0]["type"] == "union_tag_not_found"


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda c: c.__name__)
def test_extra_top_level_field_is_rejected(cls: type[BaseModel]) -> None:
    payload = {**_payload(cls), "surprise": 1}
    with pytest.raises(ValidationError) as info:
        EventAdapter.validate_json(json.dumps(payload))
    assert [e["type"] for e in info.value.errors()] == ["extra_forbidden"]


@pytest.mark.parametrize(
    ("cls", "nested"),
    [(BatchReceived, "object"), (BatchStaged, "counts")],
    ids=["object", "counts"],
)
def test_extra_nested_field_is_rejected(cls: type[BaseModel], nested: str) -> None:
    payload = _payload(cls)
    payload[nested] = {**payload[nested], "surprise": 1}
    with pytest.raises(ValidationError) as info:
        EventAdapter.validate_python(payload)
    assert [e["type"] for e in info.value.errors()] == ["extra_forbidden"]


@pytest.mark.parametrize(
    "sha",
    [SHA.upper(), SHA[:-1], SHA + "0", "g" + SHA[1:], "", SHA[:32] + " " + SHA[33:]],
    ids=["uppercase", "short", "long", "not-hex", "empty", "space"],
)
def test_batch_received_with_bad_sha256_is_rejected(sha: str) -> None:
    payload = {**_payload(BatchReceived), "sha256": sha}
    with pytest.raises(ValidationError) as info:
        EventAdapter.validate_python(payload)
    assert [e["loc"][-1] for e in info.value.errors()] == ["sha256"]


def test_negative_counts_are_rejected() -> None:
    payload = _payload(BatchStaged)
    payload["counts"] = {**payload["counts"], "rows_rejected": -1}
    with pytest.raises(ValidationError):
        EventAdapter.validate_python(payload)


def test_events_are_immutable() -> None:
    with pytest.raises(ValidationError):
        SAMPLES[BatchLoaded].facts_upserted = 8  # type: ignore[attr-defined]


def test_defaults_fill_event_id_and_a_utc_timestamp() -> None:
    before = datetime.now(UTC)
    a = BatchLoaded(batch_id=BATCH_ID, dataset=Dataset.sales, facts_upserted=0, dates_refreshed=0)
    b = BatchLoaded(batch_id=BATCH_ID, dataset=Dataset.sales, facts_upserted=0, dates_refreshed=0)
    assert a.event_id != b.event_id
    assert a.occurred_at.utcoffset() == timedelta(0)
    assert before <= a.occurred_at <= datetime.now(UTC)


def test_json_schema_matches_the_pinned_contract() -> None:
    current = json.dumps(EventAdapter.json_schema(), indent=2, sort_keys=True) + "\n"
    pinned = SCHEMA_FILE.read_text(encoding="utf-8")
    assert current == pinned, (
        f"The event JSON schema differs from the pinned contract {SCHEMA_FILE}. Consumers of other "
        "versions may break. If this contract change is intended, regenerate the file deliberately "
        f"(from the repository root) and review the diff:\n  {REGENERATE}"
    )


def test_pinned_schema_lists_every_event_type() -> None:
    pinned = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert set(pinned["discriminator"]["mapping"]) == EVENT_TYPES


# --- routing -------------------------------------------------------------------------------------------


def test_every_route_key_is_an_event_type() -> None:
    assert ROUTES, "no routes at all"
    assert set(ROUTES) <= EVENT_TYPES


@pytest.mark.parametrize("event_type", sorted(ROUTES))
def test_route_task_is_registered_by_its_service(event_type: str) -> None:
    route = ROUTES[event_type]
    assert route.service in SERVICES
    prefix, _, name = route.task.partition(".")
    assert name, f"task {route.task!r} has no service prefix"
    assert prefix == route.service
    module = importlib.import_module(f"services.{route.service}.worker")
    assert route.task in module.app.tasks
    # Celery shares @app.task tasks with every app in the process, so also check who defined it.
    assert module.app.tasks[route.task].__module__ == module.__name__
    assert module.app.conf.task_routes[route.task] == {"queue": module.settings.queue(route.service)}


def test_status_after_covers_every_event_type() -> None:
    assert set(STATUS_AFTER) == EVENT_TYPES


def test_only_terminal_statuses_lack_a_consumer() -> None:
    """An event leaving a batch in a non-terminal status must be routed, or the batch stalls."""
    for event_type in EVENT_TYPES:
        terminal = STATUS_AFTER[event_type] in TERMINAL_STATUSES
        assert (event_type in ROUTES) is not terminal, event_type
    assert set(STATUS_AFTER.values()) >= TERMINAL_STATUSES


def test_a_stage_failure_reason_names_the_root_cause_without_the_stack() -> None:
    from shared.worker import MAX_REASON_CHARS, describe_error

    jvm = RuntimeError(
        "An error occurred while calling o123.csv.\n"
        ": org.apache.spark.SparkException: Job aborted.\n"
        "\tat org.apache.spark.sql.Foo.bar(Foo.scala:10)\n"
        * 200
        + "Caused by: com.univocity.parsers.common.TextParsingException: columns exceed 20480\n"
        "\tat com.univocity.Baz(Baz.java:1)\n"
    )
    reason = describe_error(jvm)
    assert reason.startswith("RuntimeError: An error occurred while calling o123.csv.")
    assert reason.endswith("(root cause: com.univocity.parsers.common.TextParsingException: columns exceed 20480)")
    assert "\tat " not in reason and len(reason) <= MAX_REASON_CHARS
    assert describe_error(ValueError("plain")) == "ValueError: plain"
