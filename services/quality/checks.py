"""Quality checks: each one set-based SQL over a batch's rows, returning an observed value.

The check list is code for now; the declarative, versioned configuration comes with the quality
service's own issue. Every result is stored with the version of the check list that produced it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.datasets import CONTRACTS, Dataset

CONFIG_VERSION = "builtin-1"
SAMPLE_SIZE = 10

Severity = Literal["warn", "error"]
Status = Literal["pass", "warn", "fail"]


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


def _status(failed: bool, severity: Severity) -> Status:
    if not failed:
        return "pass"
    return "fail" if severity == "error" else "warn"


def required_columns(facts: BatchFacts) -> CheckResult:
    missing = CONTRACTS[facts.dataset].missing_columns(facts.header)
    missing_required = [c for c in missing if c in CONTRACTS[facts.dataset].required]
    return CheckResult(
        check_name="schema.required_columns",
        check_type="schema",
        severity="error",
        status=_status(bool(missing_required), "error"),
        observed=json.dumps(
            {
                "missing_required": missing_required,
                "missing_optional": [c for c in missing if c not in missing_required],
            }
        ),
        threshold="all required columns present",
        failing_sample=missing_required,
    )


async def not_null(
    conn: AsyncConnection,
    facts: BatchFacts,
    *,
    column: str,
    layer: Literal["raw", "staging"],
    severity: Severity,
    max_fraction: float,
) -> CheckResult:
    """Share of the batch's rows in ``layer`` where ``column`` is null (raw: null or blank)."""
    if column not in CONTRACTS[facts.dataset].column_names:
        raise ValueError(f"{column} is not a column of {facts.dataset.value}")
    table = f"{layer}.{facts.dataset.value}"
    is_null = f"nullif(btrim({column}), '') IS NULL" if layer == "raw" else f"{column} IS NULL"
    row = (
        await conn.execute(
            text(
                f"""SELECT count(*) AS total, count(*) FILTER (WHERE {is_null}) AS nulls,
                           (array_agg(source_line ORDER BY source_line) FILTER (WHERE {is_null}))[1:{SAMPLE_SIZE}]
                    FROM {table} WHERE batch_id = :batch_id"""
            ),
            {"batch_id": facts.batch_id},
        )
    ).one()
    total, nulls, sample = int(row[0]), int(row[1]), row[2] or []
    fraction = nulls / total if total else 0.0
    return CheckResult(
        check_name=f"not_null.{layer}.{column}",
        check_type="not_null",
        severity=severity,
        status=_status(fraction > max_fraction, severity),
        observed=f"{nulls}/{total} null ({fraction:.4%})",
        threshold=f"<= {max_fraction:.2%}",
        failing_sample=[f"line {line}" for line in sample],
    )


async def reject_rate(conn: AsyncConnection, facts: BatchFacts, *, max_fraction: float) -> CheckResult:
    row = (
        await conn.execute(
            text("SELECT rows_in, rows_rejected FROM ops.batches WHERE batch_id = :batch_id"),
            {"batch_id": facts.batch_id},
        )
    ).one()
    rows_in, rejected = int(row[0] or 0), int(row[1] or 0)
    fraction = rejected / rows_in if rows_in else 0.0
    return CheckResult(
        check_name="rows.reject_rate",
        check_type="row_count",
        severity="error",
        status=_status(fraction > max_fraction, "error"),
        observed=f"{rejected}/{rows_in} rejected ({fraction:.4%})",
        threshold=f"<= {max_fraction:.2%}",
    )


async def run_checks(conn: AsyncConnection, facts: BatchFacts) -> list[CheckResult]:
    contract = CONTRACTS[facts.dataset]
    checks: list[Coroutine[Any, Any, CheckResult]] = [
        not_null(conn, facts, column=column, layer="raw", severity="error", max_fraction=0.05)
        for column in contract.required
    ]
    if facts.dataset is Dataset.sales:
        checks += [
            not_null(conn, facts, column=column, layer="staging", severity="warn", max_fraction=0.0)
            for column in ("customer_id", "product_id")
        ]
    checks.append(reject_rate(conn, facts, max_fraction=0.10))
    results = [required_columns(facts)]
    for check in checks:
        started = time.perf_counter()
        result = await check
        results.append(replace(result, duration_ms=round((time.perf_counter() - started) * 1000, 3)))
    return results
