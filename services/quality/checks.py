"""Quality checks: each one set-based SQL over a batch's rows, returning an observed value and a status.

What runs comes from the declarative config (shared/quality_config.py): every check type has one function
here. Column names reach the SQL only after the config has matched them against the dataset's contract;
every value (accepted values, bounds, patterns, tolerances) is a bound parameter. A sample of failing keys
is read only when something failed, with a LIMIT. The checks judged row by row share one scan of the
batch per layer (a FILTER each), so ten of them cost about one pass over the rows, not ten.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.datasets import CONTRACTS, Dataset
from shared.quality_config import (
    AcceptedValuesCheck,
    Check,
    ExpressionCheck,
    FreshnessCheck,
    NotNullCheck,
    RangeCheck,
    ReferentialCheck,
    RegexCheck,
    RejectRateCheck,
    RowCountChangeCheck,
    RowCountCheck,
    SchemaCheck,
    Severity,
    Threshold,
    UniqueCheck,
    split_rule,
)

SAMPLE_SIZE = 10

Status = Literal["pass", "warn", "fail"]

# The PostgreSQL type each contract type is staged as (information_schema.columns.data_type).
STAGED_TYPES = {
    "text": "text",
    "boolean": "boolean",
    "integer": "integer",
    "numeric(12,2)": "numeric",
    "timestamptz": "timestamp with time zone",
}
# What a range bound is cast to before it is compared with a column of the contract type.
BOUND_TYPES = {"integer": "numeric", "numeric(12,2)": "numeric", "timestamptz": "timestamptz"}


@dataclass(frozen=True)
class CheckResult:
    check_name: str
    check_type: str
    severity: Severity
    status: Status
    observed: str
    threshold: str
    failing_sample: list[str] = field(default_factory=list)
    duration_ms: float = 0.0


@dataclass(frozen=True)
class BatchFacts:
    batch_id: uuid.UUID
    dataset: Dataset
    header: list[str]
    schema_drift: list[str] = field(default_factory=list)


def _status(failed: bool, severity: Severity) -> Status:
    if not failed:
        return "pass"
    return "fail" if severity == "error" else "warn"


def _share(failing: int, total: int) -> str:
    return f"{failing}/{total} ({failing / total:.4%})" if total else f"{failing}/0"


def _key_text(dataset: Dataset, layer: str) -> str:
    """How a failing row is named in a sample: its key in staging, its file line in raw."""
    return "'line ' || source_line" if layer == "raw" else CONTRACTS[dataset].key


@dataclass(frozen=True)
class RowPredicate:
    """A check judged row by row: the rows of ``layer`` where ``failing_sql`` holds are its failing rows."""

    layer: str
    failing_sql: str
    params: dict[str, Any]
    threshold: Threshold
    what: str


async def _sample(conn: AsyncConnection, facts: BatchFacts, predicate: RowPredicate) -> list[str]:
    rows = await conn.execute(
        text(
            f"""SELECT {_key_text(facts.dataset, predicate.layer)} FROM {predicate.layer}.{facts.dataset.value}
                WHERE batch_id = :batch_id AND ({predicate.failing_sql}) ORDER BY source_line LIMIT {SAMPLE_SIZE}"""
        ),
        {"batch_id": facts.batch_id, **predicate.params},
    )
    return [str(r[0]) for r in rows]


async def _scan(conn: AsyncConnection, facts: BatchFacts, checks: list[Check]) -> list[CheckResult]:
    """Judge every row-predicate check on one layer in one scan of the batch's rows (one FILTER each).

    The scan's time is shared equally among its checks; a check's own sample query is added to its share.
    """
    predicates = [ROW_PREDICATES[check.type](facts, check) for check in checks]
    layer = predicates[0].layer
    params: dict[str, Any] = {"batch_id": facts.batch_id}
    filters = []
    for i, predicate in enumerate(predicates):
        sql = predicate.failing_sql
        for name, value in predicate.params.items():
            sql = re.sub(rf":{name}\b", f":p{i}_{name}", sql)
            params[f"p{i}_{name}"] = value
        filters.append(f"count(*) FILTER (WHERE {sql})")
    started = time.perf_counter()
    total, *failing = (
        await conn.execute(
            text(
                f"""SELECT count(*), {", ".join(filters)} FROM {layer}.{facts.dataset.value}
                    WHERE batch_id = :batch_id"""
            ),
            params,
        )
    ).one()
    share_ms = (time.perf_counter() - started) * 1000 / len(checks)
    results = []
    for check, predicate, count in zip(checks, predicates, failing, strict=True):
        started = time.perf_counter()
        sample = await _sample(conn, facts, predicate) if count else []
        judged = _judged(
            check,
            failing=int(count),
            total=int(total),
            threshold=predicate.threshold,
            sample=sample,
            what=predicate.what,
        )
        results.append(replace(judged, duration_ms=round(share_ms + (time.perf_counter() - started) * 1000, 3)))
    return results


def _judged(
    check: Check, *, failing: int, total: int, threshold: Threshold, sample: list[str], what: str
) -> CheckResult:
    return CheckResult(
        check_name=check.name,
        check_type=check.type,
        severity=check.severity,
        status=_status(threshold.exceeded(failing, total), check.severity),
        observed=f"{_share(failing, total)} {what}",
        threshold=str(threshold),
        failing_sample=sample,
    )


async def schema(conn: AsyncConnection, facts: BatchFacts, check: SchemaCheck) -> CheckResult:
    contract = CONTRACTS[facts.dataset]
    missing = contract.missing_columns(facts.header)
    missing_required = [c for c in missing if c in contract.required]
    rows = await conn.execute(
        text(
            """SELECT column_name, data_type FROM information_schema.columns
               WHERE table_schema = 'staging' AND table_name = :table"""
        ),
        {"table": facts.dataset.value},
    )
    staged = {r[0]: r[1] for r in rows}
    wrong_types = [
        f"{c.name}: {staged.get(c.name, 'absent')}, not {STAGED_TYPES[c.type]}"
        for c in contract.columns
        if staged.get(c.name) != STAGED_TYPES[c.type]
    ]
    failing = missing_required + (missing if check.require_all else []) + wrong_types
    if check.fail_on_drift:
        failing += facts.schema_drift
    failing = list(dict.fromkeys(failing))
    return CheckResult(
        check_name=check.name,
        check_type=check.type,
        severity=check.severity,
        status=_status(bool(failing), check.severity),
        observed=json.dumps(
            {
                "missing_required": missing_required,
                "missing_optional": [c for c in missing if c not in missing_required],
                "wrong_types": wrong_types,
                "drift": facts.schema_drift,
            }
        ),
        threshold=(
            ("every contract column" if check.require_all else "all required columns")
            + " present with the contract's types"
            + ("; no extra columns" if check.fail_on_drift else "; extra columns reported as drift")
        ),
        failing_sample=failing[:SAMPLE_SIZE],
    )


def not_null(facts: BatchFacts, check: NotNullCheck) -> RowPredicate:
    """Raw values are text as read: blank counts as null there."""
    column = check.column
    is_null = f"nullif(btrim({column}), '') IS NULL" if check.layer == "raw" else f"{column} IS NULL"
    return RowPredicate(check.layer, is_null, {}, check.max_failing, "null")


async def _primary_key(conn: AsyncConnection, table: str) -> set[str]:
    rows = await conn.execute(
        text(
            """SELECT a.attname FROM pg_index i
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
               WHERE i.indrelid = CAST(:table AS regclass) AND i.indisprimary"""
        ),
        {"table": table},
    )
    return {r[0] for r in rows}


async def unique(conn: AsyncConnection, facts: BatchFacts, check: UniqueCheck) -> CheckResult:
    columns = ", ".join(check.columns_)
    table = f"staging.{facts.dataset.value}"
    if await _primary_key(conn, table) <= {"batch_id", *check.columns_}:
        # The staging table's primary key (batch_id, ...) already makes these columns unique in a batch.
        return CheckResult(
            check_name=check.name,
            check_type=check.type,
            severity=check.severity,
            status="pass",
            observed=f"0 duplicates: ({columns}) is unique per batch by the primary key of {table}",
            threshold=str(check.max_failing),
        )
    total, failing = (
        await conn.execute(
            text(
                f"""SELECT coalesce(sum(n), 0), coalesce(sum(n) FILTER (WHERE n > 1), 0)
                    FROM (SELECT count(*) AS n FROM {table} WHERE batch_id = :batch_id GROUP BY {columns}) g"""
            ),
            {"batch_id": facts.batch_id},
        )
    ).one()
    sample: list[str] = []
    if failing:
        key = "concat_ws('|', " + ", ".join(f"CAST({c} AS text)" for c in check.columns_) + ")"
        rows = await conn.execute(
            text(
                f"""SELECT {key} FROM {table} WHERE batch_id = :batch_id
                    GROUP BY {columns} HAVING count(*) > 1 ORDER BY min(source_line) LIMIT {SAMPLE_SIZE}"""
            ),
            {"batch_id": facts.batch_id},
        )
        sample = [str(r[0]) for r in rows]
    return _judged(
        check,
        failing=int(failing),
        total=int(total),
        threshold=check.max_failing,
        sample=sample,
        what=f"rows share their ({columns}) with another row",
    )


def accepted_values(facts: BatchFacts, check: AcceptedValuesCheck) -> RowPredicate:
    outside = f"{check.column} IS NOT NULL AND NOT (CAST({check.column} AS text) = ANY(CAST(:values AS text[])))"
    return RowPredicate(check.layer, outside, {"values": list(check.values)}, check.max_failing, "outside the values")


def value_range(facts: BatchFacts, check: RangeCheck) -> RowPredicate:
    bound_type = BOUND_TYPES[next(c.type for c in CONTRACTS[facts.dataset].columns if c.name == check.column)]
    conditions, params = [], {}
    if check.min is not None:
        conditions.append(f"{check.column} < CAST(CAST(:min AS text) AS {bound_type})")
        params["min"] = str(check.min)
    if check.max is not None:
        conditions.append(f"{check.column} > CAST(CAST(:max AS text) AS {bound_type})")
        params["max"] = str(check.max)
    bounds = f"[{'' if check.min is None else check.min}, {'' if check.max is None else check.max}]"
    return RowPredicate("staging", " OR ".join(conditions), params, check.max_failing, f"outside {bounds}")


def regex(facts: BatchFacts, check: RegexCheck) -> RowPredicate:
    mismatch = f"{check.column} IS NOT NULL AND CAST({check.column} AS text) !~ :pattern"
    return RowPredicate(
        check.layer, mismatch, {"pattern": check.pattern}, check.max_failing, f"not matching {check.pattern}"
    )


async def _staged_rows(conn: AsyncConnection, facts: BatchFacts) -> int:
    """The batch's staged rows as the transform counted them (it checks the count against the rows it copied
    into staging, and ops.batches holds it to rows_in = valid + rejected + duplicate): no second scan."""
    return int(
        (
            await conn.execute(
                text("SELECT coalesce(rows_valid, 0) FROM ops.batches WHERE batch_id = :batch_id"),
                {"batch_id": facts.batch_id},
            )
        ).scalar_one()
    )


async def row_count(conn: AsyncConnection, facts: BatchFacts, check: RowCountCheck) -> CheckResult:
    rows = await _staged_rows(conn, facts)
    outside = (check.min is not None and rows < check.min) or (check.max is not None and rows > check.max)
    return CheckResult(
        check_name=check.name,
        check_type=check.type,
        severity=check.severity,
        status=_status(outside, check.severity),
        observed=f"{rows} rows staged",
        threshold=f"[{'' if check.min is None else check.min}, {'' if check.max is None else check.max}] rows",
    )


async def row_count_change(conn: AsyncConnection, facts: BatchFacts, check: RowCountChangeCheck) -> CheckResult:
    rows = await _staged_rows(conn, facts)
    previous = (
        await conn.execute(
            text(
                """SELECT p.batch_id, p.rows_valid FROM ops.batches p, ops.batches b
                   WHERE b.batch_id = :batch_id AND p.dataset = b.dataset AND p.status = 'loaded'
                     AND p.received_at < b.received_at
                   ORDER BY p.received_at DESC LIMIT 1"""
            ),
            {"batch_id": facts.batch_id},
        )
    ).one_or_none()
    threshold = f"<= {check.max_change.value:g}% change vs. the previous loaded batch"
    if previous is None or previous[1] is None:
        return CheckResult(
            check.name, check.type, check.severity, "pass", f"{rows} rows; no previous loaded batch", threshold
        )
    before = int(previous[1])
    change = abs(rows - before) * 100 / before if before else (0.0 if rows == 0 else float("inf"))
    return CheckResult(
        check_name=check.name,
        check_type=check.type,
        severity=check.severity,
        status=_status(change > check.max_change.value, check.severity),
        observed=f"{rows} rows vs. {before} in batch {previous[0]} ({change:+.2f}%)".replace("+", ""),
        threshold=threshold,
    )


async def reject_rate(conn: AsyncConnection, facts: BatchFacts, check: RejectRateCheck) -> CheckResult:
    row = (
        await conn.execute(
            text("SELECT rows_in, rows_rejected FROM ops.batches WHERE batch_id = :batch_id"),
            {"batch_id": facts.batch_id},
        )
    ).one()
    rows_in, rejected = int(row[0] or 0), int(row[1] or 0)
    sample: list[str] = []
    if check.max_failing.exceeded(rejected, rows_in):
        lines = await conn.execute(
            text(
                f"""SELECT source_line FROM staging.{facts.dataset.value}_rejects WHERE batch_id = :batch_id
                    ORDER BY source_line LIMIT {SAMPLE_SIZE}"""
            ),
            {"batch_id": facts.batch_id},
        )
        sample = [f"line {r[0]}" for r in lines]
    return _judged(check, failing=rejected, total=rows_in, threshold=check.max_failing, sample=sample, what="rejected")


def _sql_side(side: str) -> str:
    """A rule's side as SQL: validated to be columns, numbers and arithmetic only (split_rule)."""
    return f"({side})"


def expression(facts: BatchFacts, check: ExpressionCheck) -> RowPredicate:
    lhs, comparator, rhs = split_rule(check.rule)
    left, right = _sql_side(lhs), _sql_side(rhs)
    holds = {
        "=": f"abs({left} - {right}) <= :tolerance",
        "<": f"{left} < {right} + :tolerance",
        "<=": f"{left} <= {right} + :tolerance",
        ">": f"{left} + :tolerance > {right}",
        ">=": f"{left} + :tolerance >= {right}",
    }[comparator]
    # NOT (NULL) is NULL, so a row with a null operand is neither counted failing nor passing.
    return RowPredicate(
        "staging",
        f"NOT ({holds})",
        {"tolerance": check.tolerance},
        check.max_failing,
        f"break {check.rule} (tolerance {check.tolerance})",
    )


def _known_keys(references: Dataset) -> str:
    """Keys a sale may name: current, non-inferred dimension members and staged rows of accepted batches."""
    key = CONTRACTS[references].key
    return f"""SELECT {key} AS k FROM processed.dim_{references.value} WHERE is_current AND NOT is_inferred
               UNION
               SELECT s.{key} FROM staging.{references.value} s
               JOIN ops.batches b ON b.batch_id = s.batch_id AND b.status IN ('validated', 'loaded')"""


async def referential(conn: AsyncConnection, facts: BatchFacts, check: ReferentialCheck) -> CheckResult:
    column = check.column
    table = f"staging.{facts.dataset.value}"
    with_key, unknown = (
        await conn.execute(
            text(
                f"""WITH known AS ({_known_keys(check.references)})
                    SELECT count(*) FILTER (WHERE s.{column} IS NOT NULL),
                           count(*) FILTER (WHERE s.{column} IS NOT NULL AND known.k IS NULL)
                    FROM {table} s LEFT JOIN known ON known.k = s.{column}
                    WHERE s.batch_id = :batch_id"""
            ),
            {"batch_id": facts.batch_id},
        )
    ).one()
    with_key, unknown, unknown_keys = int(with_key), int(unknown), 0
    sample: list[str] = []
    if unknown:
        rows = (
            await conn.execute(
                text(
                    f"""WITH known AS ({_known_keys(check.references)})
                        SELECT k, count(*) OVER () FROM (
                            SELECT DISTINCT s.{column} AS k FROM {table} s
                            WHERE s.batch_id = :batch_id AND s.{column} IS NOT NULL
                              AND NOT EXISTS (SELECT 1 FROM known WHERE known.k = s.{column})) d
                        ORDER BY k LIMIT {SAMPLE_SIZE}"""
                ),
                {"batch_id": facts.batch_id},
            )
        ).all()
        sample = [str(r[0]) for r in rows]
        unknown_keys = int(rows[0][1]) if rows else 0
    observed = f"{_share(unknown, with_key)} rows name an unknown {check.references.value} ({unknown_keys} keys)"
    if check.unknown == "infer":
        return CheckResult(
            check_name=check.name,
            check_type=check.type,
            severity=check.severity,
            status="pass",
            observed=observed + "; inferred members are created for them",
            threshold="unknown keys are inferred",
            failing_sample=sample,
        )
    judged = _judged(check, failing=unknown, total=with_key, threshold=check.max_failing, sample=sample, what="")
    return replace(judged, observed=observed)


async def freshness(conn: AsyncConnection, facts: BatchFacts, check: FreshnessCheck) -> CheckResult:
    newest, lag = (
        await conn.execute(
            text(
                f"""SELECT max({check.column}), extract(epoch FROM clock_timestamp() - max({check.column}))
                    FROM staging.{facts.dataset.value} WHERE batch_id = :batch_id"""
            ),
            {"batch_id": facts.batch_id},
        )
    ).one()
    threshold = f"newest {check.column} <= {check.max_lag:g} s old"
    if newest is None:
        return CheckResult(check.name, check.type, check.severity, "pass", "no rows", threshold)
    assert isinstance(newest, datetime)
    return CheckResult(
        check_name=check.name,
        check_type=check.type,
        severity=check.severity,
        status=_status(float(lag) > check.max_lag, check.severity),
        observed=f"newest {check.column} {newest.isoformat()}, {float(lag):.0f} s old",
        threshold=threshold,
    )


CheckFunction = Callable[[AsyncConnection, BatchFacts, Any], Awaitable[CheckResult]]
ROW_PREDICATES: dict[str, Callable[[BatchFacts, Any], RowPredicate]] = {
    "not_null": not_null,
    "accepted_values": accepted_values,
    "range": value_range,
    "regex": regex,
    "expression": expression,
}
RUNNERS: dict[str, CheckFunction] = {
    "schema": schema,
    "unique": unique,
    "row_count": row_count,
    "row_count_change": row_count_change,
    "reject_rate": reject_rate,
    "referential": referential,
    "freshness": freshness,
}


async def run_check(conn: AsyncConnection, facts: BatchFacts, check: Check) -> CheckResult:
    if check.type in ROW_PREDICATES:
        return (await _scan(conn, facts, [check]))[0]
    started = time.perf_counter()
    result = await RUNNERS[check.type](conn, facts, check)
    return replace(result, duration_ms=round((time.perf_counter() - started) * 1000, 3))


async def run_checks(conn: AsyncConnection, facts: BatchFacts, checks: list[Check]) -> list[CheckResult]:
    """Every check, results in the config's order, on the stage's connection (one transaction).

    The row-predicate checks (not_null, accepted_values, range, regex, expression) of a layer share one
    scan of the batch's rows; the others run one statement (or two, with a sample) each.

    JIT is off for the transaction: each check is one short scan of the batch, and on a large batch
    compiling every statement's expressions costs more than it saves.
    """
    await conn.execute(text("SET LOCAL jit = off"))
    by_name: dict[str, CheckResult] = {}
    for layer in ("raw", "staging"):
        scanned = [c for c in checks if c.type in ROW_PREDICATES and ROW_PREDICATES[c.type](facts, c).layer == layer]
        if scanned:
            by_name.update((r.check_name, r) for r in await _scan(conn, facts, scanned))
    for check in checks:
        if check.type not in ROW_PREDICATES:
            by_name[check.name] = await run_check(conn, facts, check)
    return [by_name[check.name] for check in checks]
