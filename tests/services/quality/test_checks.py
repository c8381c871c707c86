"""Every check type on small batches in the session's PostgreSQL: pass, warn (severity warn) and fail
(severity error) against rows inserted straight into raw/staging, and the gate's verdict."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import TypeAdapter, ValidationError

from services.quality.checks import BatchFacts, CheckResult, run_check
from services.quality.service import verdict
from shared.batches import BatchRow
from shared.datasets import CONTRACTS, Dataset
from shared.db import create_engine
from shared.events import BatchQuarantined, BatchValidated
from shared.quality_config import Check, QualityConfig, Threshold, load_quality_config
from shared.settings import PROJECT_ROOT, PlatformSettings
from tests.batch_rows import insert_batch

CHECK = TypeAdapter(Check)
SALES_HEADER = list(CONTRACTS[Dataset.sales].column_names)
NOW = datetime.now(UTC)

Sale = dict[str, Any]


def sale(n: int, **values: Any) -> Sale:
    row: Sale = {
        "transaction_id": f"T-{n}",
        "transaction_ts": NOW - timedelta(hours=1),
        "customer_id": f"C-{n}",
        "product_id": "P-1",
        "quantity": 2,
        "unit_price": 10,
        "total_amount": 20,
        "payment_method": "pix",
        "status": "completed",
    }
    return {**row, **values}


async def _insert_sales(conn: asyncpg.Connection, batch_id: uuid.UUID, rows: Sequence[Sale]) -> None:
    columns = ["batch_id", "source_line", *SALES_HEADER]
    await conn.copy_records_to_table(
        "sales",
        schema_name="staging",
        columns=columns,
        records=[(batch_id, i + 2, *(row[c] for c in SALES_HEADER)) for i, row in enumerate(rows)],
    )


Setup = Callable[[asyncpg.Connection], Awaitable[BatchFacts]]


def run(settings: PlatformSettings, setup: Setup, check: dict[str, Any]) -> CheckResult:
    """Insert a batch with ``setup`` (committed), run one check on it, return the result."""

    async def go() -> CheckResult:
        conn = await asyncpg.connect(settings.database_url)
        try:
            facts = await setup(conn)
        finally:
            await conn.close()
        engine = create_engine(settings)
        try:
            async with engine.begin() as sa_conn:
                return await run_check(sa_conn, facts, CHECK.validate_python(check))
        finally:
            await engine.dispose()

    return asyncio.run(go())


def sales_batch(rows: Sequence[Sale], **batch: Any) -> Setup:
    async def setup(conn: asyncpg.Connection) -> BatchFacts:
        batch_id = await insert_batch(conn, header=SALES_HEADER, rows_in=len(rows), **batch)
        await _insert_sales(conn, batch_id, rows)
        return BatchFacts(batch_id, Dataset.sales, SALES_HEADER, list(batch.get("drift", ())))

    return setup


def assert_pass_warn_fail(
    settings: PlatformSettings, check: dict[str, Any], good: Setup, bad: Setup
) -> tuple[CheckResult, CheckResult]:
    """The good batch passes at either severity; the bad one warns at ``warn`` and fails at ``error``."""
    for severity in ("warn", "error"):
        assert run(settings, good, {**check, "severity": severity}).status == "pass"
    warned = run(settings, bad, {**check, "severity": "warn"})
    failed = run(settings, bad, {**check, "severity": "error"})
    assert (warned.status, failed.status) == ("warn", "fail"), (warned, failed)
    assert failed.check_name == check["name"] and failed.check_type == check["type"]
    return warned, failed


# --- one test per check type ------------------------------------------------------------------------


def test_schema(settings: PlatformSettings) -> None:
    def batch(header: list[str], drift: list[str]) -> Setup:
        async def setup(conn: asyncpg.Connection) -> BatchFacts:
            batch_id = await insert_batch(conn, header=header, drift=drift)
            return BatchFacts(batch_id, Dataset.sales, header, drift)

        return setup

    check = {"name": "schema", "type": "schema"}
    without_ts = [c for c in SALES_HEADER if c != "transaction_ts"]
    _, failed = assert_pass_warn_fail(settings, check, batch(SALES_HEADER, ["extra"]), batch(without_ts, []))
    assert failed.failing_sample == ["transaction_ts"]
    # Drift is reported; it fails only when the config says so.
    drifted = run(settings, batch(SALES_HEADER, ["extra"]), check)
    assert drifted.status == "pass" and '"drift": ["extra"]' in drifted.observed
    strict = run(settings, batch(SALES_HEADER, ["extra"]), {**check, "fail_on_drift": True})
    assert strict.status == "fail" and strict.failing_sample == ["extra"]
    optional_missing = [c for c in SALES_HEADER if c != "status"]
    assert run(settings, batch(optional_missing, []), check).status == "pass"
    assert run(settings, batch(optional_missing, []), {**check, "require_all": True}).status == "fail"


def test_not_null_counts_and_percentages(settings: PlatformSettings) -> None:
    check = {"name": "nn", "type": "not_null", "column": "customer_id"}
    rows = [sale(i) for i in range(10)]
    _, failed = assert_pass_warn_fail(
        settings, check, sales_batch(rows), sales_batch([*rows[:9], sale(9, customer_id=None)])
    )
    assert failed.failing_sample == ["T-9"] and failed.observed.startswith("1/10")
    one_null = sales_batch([*rows[:9], sale(9, customer_id=None)])
    assert run(settings, one_null, {**check, "max_failing": "10%"}).status == "pass"
    assert run(settings, one_null, {**check, "max_failing": "9.9%"}).status == "fail"
    assert run(settings, one_null, {**check, "max_failing": 1}).status == "pass"


def test_not_null_on_raw_counts_blanks(settings: PlatformSettings) -> None:
    def raw(values: list[str | None]) -> Setup:
        async def setup(conn: asyncpg.Connection) -> BatchFacts:
            batch_id = await insert_batch(conn, rows_in=len(values))
            await conn.executemany(
                "INSERT INTO raw.sales (batch_id, source_line, transaction_ts) VALUES ($1, $2, $3)",
                [(batch_id, i + 2, v) for i, v in enumerate(values)],
            )
            return BatchFacts(batch_id, Dataset.sales, SALES_HEADER)

        return setup

    check = {"name": "nn.raw", "type": "not_null", "layer": "raw", "column": "transaction_ts"}
    _, failed = assert_pass_warn_fail(settings, check, raw(["2024-01-01"] * 3), raw(["2024-01-01", "  ", None]))
    assert failed.failing_sample == ["line 3", "line 4"]


def test_unique(settings: PlatformSettings) -> None:
    check = {"name": "uq", "type": "unique", "columns": ["customer_id"]}
    good = [sale(i) for i in range(4)]
    bad = [sale(0), sale(1, customer_id="C-0"), sale(2), sale(3, customer_id="C-2"), sale(4, customer_id="C-2")]
    _, failed = assert_pass_warn_fail(settings, check, sales_batch(good), sales_batch(bad))
    assert failed.observed.startswith("5/5") and failed.failing_sample == ["C-0", "C-2"]
    assert run(settings, sales_batch(bad), {**check, "max_failing": 5}).status == "pass"


def test_accepted_values(settings: PlatformSettings) -> None:
    check = {"name": "av", "type": "accepted_values", "column": "payment_method", "values": ["pix", "cash"]}
    good = [sale(0), sale(1, payment_method="cash"), sale(2, payment_method=None)]
    bad = [sale(0), sale(1, payment_method="bitcoin")]
    _, failed = assert_pass_warn_fail(settings, check, sales_batch(good), sales_batch(bad))
    assert failed.failing_sample == ["T-1"]


def test_range_on_numbers_and_timestamps(settings: PlatformSettings) -> None:
    check = {"name": "rg", "type": "range", "column": "quantity", "min": 1, "max": 10}
    _, failed = assert_pass_warn_fail(
        settings, check, sales_batch([sale(0, quantity=1), sale(1, quantity=10)]), sales_batch([sale(0, quantity=11)])
    )
    assert failed.failing_sample == ["T-0"]
    ts_check = {"name": "rg.ts", "type": "range", "column": "transaction_ts", "min": "2020-01-01T00:00:00Z"}
    old = sales_batch([sale(0, transaction_ts=datetime(2019, 12, 31, 23, 59, tzinfo=UTC))])
    assert run(settings, old, ts_check).status == "fail"
    assert run(settings, sales_batch([sale(0)]), ts_check).status == "pass"


def test_regex(settings: PlatformSettings) -> None:
    check = {"name": "re", "type": "regex", "column": "transaction_id", "pattern": "^T-[0-9]+$"}
    _, failed = assert_pass_warn_fail(
        settings, check, sales_batch([sale(0), sale(1)]), sales_batch([sale(0), sale(1, transaction_id="=cmd|x")])
    )
    assert failed.failing_sample == ["=cmd|x"]


def test_row_count(settings: PlatformSettings) -> None:
    check = {"name": "rc", "type": "row_count", "min": 2, "max": 3}
    assert_pass_warn_fail(settings, check, sales_batch([sale(0), sale(1)]), sales_batch([sale(0)]))
    assert run(settings, sales_batch([sale(i) for i in range(4)]), check).status == "fail"


def test_row_count_change_against_the_previous_loaded_batch(settings: PlatformSettings) -> None:
    # Received far in the future, so no batch of another test comes between these and their previous one.
    future = datetime(2999, 1, 1, tzinfo=UTC) + timedelta(days=uuid.uuid4().int % 10_000)

    def after_previous(previous_rows: int, rows: int) -> Setup:
        async def setup(conn: asyncpg.Connection) -> BatchFacts:
            await insert_batch(conn, status="loaded", rows_in=previous_rows, received_at=future)
            await insert_batch(conn, status="failed", rows_in=1, received_at=future + timedelta(seconds=1))
            return await sales_batch([sale(i) for i in range(rows)], received_at=future + timedelta(seconds=2))(conn)

        return setup

    check = {"name": "chg", "type": "row_count_change", "max_change": "50%"}
    _, failed = assert_pass_warn_fail(settings, check, after_previous(10, 6), after_previous(10, 4))
    assert "4 rows vs. 10" in failed.observed and "60.00%" in failed.observed
    first = sales_batch([sale(0)], received_at=datetime(1990, 1, 1, tzinfo=UTC))
    assert run(settings, first, check).observed.endswith("no previous loaded batch")
    with pytest.raises(ValidationError):
        CHECK.validate_python({**check, "max_change": 50})


def test_reject_rate(settings: PlatformSettings) -> None:
    def rejected(rows_in: int, count: int) -> Setup:
        async def setup(conn: asyncpg.Connection) -> BatchFacts:
            batch_id = await insert_batch(conn, rows_in=rows_in, rejected=count)
            await conn.executemany(
                """INSERT INTO staging.sales_rejects (batch_id, source_line, reasons, record)
                   VALUES ($1, $2, '{invalid_quantity}', '{}')""",
                [(batch_id, line) for line in range(2, 2 + count)],
            )
            return BatchFacts(batch_id, Dataset.sales, SALES_HEADER)

        return setup

    check = {"name": "rr", "type": "reject_rate", "max_failing": "10%"}
    _, failed = assert_pass_warn_fail(settings, check, rejected(10, 1), rejected(10, 2))
    assert failed.failing_sample == ["line 2", "line 3"] and failed.threshold == "<= 10%"


def test_expression_within_a_tolerance(settings: PlatformSettings) -> None:
    check = {"name": "ex", "type": "expression", "rule": "total_amount = quantity * unit_price", "tolerance": 0.01}
    good = [sale(0), sale(1, total_amount=20.01), sale(2, total_amount=None)]
    bad = [sale(0), sale(1, total_amount=20.02)]
    _, failed = assert_pass_warn_fail(settings, check, sales_batch(good), sales_batch(bad))
    assert failed.failing_sample == ["T-1"]
    bounded = {"name": "ex2", "type": "expression", "rule": "total_amount <= (quantity + 1) * unit_price"}
    assert run(settings, sales_batch([sale(0, total_amount=30.02)]), bounded).status == "fail"
    assert run(settings, sales_batch([sale(0, total_amount=30)]), bounded).status == "pass"


@pytest.mark.parametrize(
    "rule",
    [
        "total_amount = quantity * unit_price; DROP TABLE ops.batches",
        "total_amount = pg_sleep(1)",
        "total_amount = nosuchcolumn",
        "total_amount = quantity *",
        "total_amount quantity",
        "total_amount = (quantity",
        "status = quantity",
    ],
)
def test_an_expression_is_only_columns_numbers_and_arithmetic(rule: str) -> None:
    document = {"version": "t", "datasets": {"sales": {"checks": [{"name": "x", "type": "expression", "rule": rule}]}}}
    with pytest.raises(ValidationError):
        QualityConfig.model_validate(document)


def test_referential_known_inferable_and_unknown(settings: PlatformSettings) -> None:
    known_id = f"RC-{uuid.uuid4().hex[:8]}"

    def batch(customer: str | None) -> Setup:
        async def setup(conn: asyncpg.Connection) -> BatchFacts:
            customers = await insert_batch(conn, dataset="customers", status="loaded")
            await conn.execute(
                """INSERT INTO staging.customers (batch_id, source_line, customer_id, updated_at)
                   VALUES ($1, 2, $2, now())""",
                customers,
                known_id,
            )
            return await sales_batch([sale(0, customer_id=known_id), sale(1, customer_id=customer)])(conn)

        return setup

    check = {
        "name": "ref",
        "type": "referential",
        "column": "customer_id",
        "references": "customers",
        "unknown": "reject",
    }
    unknown_id = f"UNKNOWN-{uuid.uuid4().hex[:8]}"
    _, failed = assert_pass_warn_fail(settings, check, batch(None), batch(unknown_id))
    assert failed.failing_sample == [unknown_id] and failed.observed.startswith("1/2")
    # The default rule infers members for unknown keys: reported, not failing.
    inferred = run(settings, batch(unknown_id), {**check, "unknown": "infer"})
    assert inferred.status == "pass" and "inferred" in inferred.observed and inferred.failing_sample == [unknown_id]
    # A key known only to a quarantined batch of customers is not known.
    with pytest.raises(ValidationError):
        CHECK.validate_python({**check, "references": "sales"})


def test_freshness_of_the_batch(settings: PlatformSettings) -> None:
    check = {"name": "fr", "type": "freshness", "column": "transaction_ts", "max_lag": "1d"}
    recent = sales_batch([sale(0), sale(1, transaction_ts=NOW - timedelta(days=3))])
    stale = sales_batch([sale(0, transaction_ts=NOW - timedelta(days=2))])
    _, failed = assert_pass_warn_fail(settings, check, recent, stale)
    assert "s old" in failed.observed and failed.threshold == "newest transaction_ts <= 86400 s old"


# --- the gate and the config ----------------------------------------------------------------------------


def _result(name: str, severity: str, status: str) -> CheckResult:
    return CheckResult(name, "not_null", severity, status, "", "")  # type: ignore[arg-type]


def test_gate_quarantines_on_an_error_failure_and_loads_with_warnings() -> None:
    batch = BatchRow(uuid.uuid4(), "sales", "staged", "raw-data", "k", "csv", [], "none", ",", "sales.csv")
    quarantined = verdict(
        batch, [_result("a", "error", "fail"), _result("b", "warn", "warn"), _result("c", "error", "fail")]
    )
    assert isinstance(quarantined, BatchQuarantined)
    assert quarantined.failed_checks == ["a", "c"] and quarantined.reason == "failed checks: a, c"
    warned = verdict(batch, [_result("a", "error", "pass"), _result("b", "warn", "warn")])
    assert isinstance(warned, BatchValidated) and warned.outcome == "warn" and warned.warnings == ["b"]
    passed = verdict(batch, [_result("a", "error", "pass")])
    assert isinstance(passed, BatchValidated) and passed.outcome == "pass"


def test_thresholds_are_counts_or_percentages() -> None:
    assert Threshold.model_validate(3).exceeded(4, 100) and not Threshold.model_validate(3).exceeded(3, 100)
    assert Threshold.model_validate("5%").exceeded(6, 100) and not Threshold.model_validate("5%").exceeded(5, 100)
    assert not Threshold.model_validate("5%").exceeded(0, 0)
    with pytest.raises(ValidationError):
        Threshold.model_validate(True)


def test_the_shipped_config_is_valid_and_versioned_by_content(tmp_path: Path) -> None:
    shipped = PROJECT_ROOT / "services" / "quality" / "checks.toml"
    loaded = load_quality_config(shipped)
    declared = loaded.config.version
    assert loaded.version.startswith(f"{declared}+")
    assert {check.type for check in loaded.config.checks_for(Dataset.sales)} >= {
        "schema",
        "not_null",
        "unique",
        "accepted_values",
        "range",
        "regex",
        "row_count",
        "row_count_change",
        "expression",
        "referential",
        "freshness",
    }
    edited = tmp_path / "checks.toml"
    edited.write_text(shipped.read_text() + "\n# an edit that keeps the declared version\n")
    assert load_quality_config(edited).version != loaded.version
    assert load_quality_config(edited).config.version == declared


@pytest.mark.parametrize(
    ("check", "message"),
    [
        ({"name": "x", "type": "not_null", "column": "nope"}, "nope is not a column of sales"),
        ({"name": "x", "type": "range", "column": "status", "min": 1}, "not numeric or a timestamp"),
        ({"name": "x", "type": "range", "column": "quantity"}, "needs min, max or both"),
        ({"name": "x", "type": "regex", "column": "status", "pattern": "("}, "missing"),
        ({"name": "x", "type": "not_null", "column": "status", "max_failing": "lots"}, "could not convert"),
        ({"name": "x", "type": "freshness", "column": "transaction_ts", "max_lag": "soon"}, "not a duration"),
        ({"name": "x", "type": "nonsense"}, "does not match any of the expected tags"),
    ],
)
def test_an_invalid_config_is_refused_with_the_reason(check: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        QualityConfig.model_validate({"version": "t", "datasets": {"sales": {"checks": [check]}}})


def test_checks_sharing_a_scan_judge_as_they_do_alone(settings: PlatformSettings) -> None:
    """run_checks fuses the row-by-row checks of a layer into one scan: same statuses, counts and samples."""
    from services.quality.checks import run_checks

    checks = [
        {"name": "av", "type": "accepted_values", "column": "payment_method", "values": ["pix"]},
        {"name": "rg", "type": "range", "column": "quantity", "min": 1, "max": 2},
        {"name": "re", "type": "regex", "column": "transaction_id", "pattern": "^T-[0-2]$"},
        {"name": "ex", "type": "expression", "rule": "total_amount = quantity * unit_price", "tolerance": 0},
        {"name": "nn", "type": "not_null", "column": "customer_id", "severity": "warn"},
        {"name": "rc", "type": "row_count", "min": 1},
    ]
    rows = [sale(0), sale(1, payment_method="cash", quantity=3, total_amount=30), sale(3, customer_id=None)]
    setup = sales_batch(rows)

    async def fused() -> list[CheckResult]:
        conn = await asyncpg.connect(settings.database_url)
        try:
            facts = await setup(conn)
        finally:
            await conn.close()
        engine = create_engine(settings)
        try:
            async with engine.begin() as sa_conn:
                return await run_checks(sa_conn, facts, [CHECK.validate_python(c) for c in checks])
        finally:
            await engine.dispose()

    together = asyncio.run(fused())
    alone = [run(settings, sales_batch(rows), check) for check in checks]
    assert [r.check_name for r in together] == [c["name"] for c in checks]
    for a, b in zip(together, alone, strict=True):
        assert (a.status, a.observed, a.failing_sample) == (b.status, b.observed, b.failing_sample)
    assert [r.status for r in together] == ["fail", "fail", "fail", "pass", "warn", "pass"]
