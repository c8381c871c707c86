"""Rich tables of the API's answers. Each takes the JSON the API sent, so ``--json`` and a table show the same."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from shared.datasets import CONTRACTS, Dataset

STATUS_STYLES = {
    "received": "cyan",
    "staged": "cyan",
    "validated": "blue",
    "loaded": "green",
    "quarantined": "yellow",
    "failed": "red",
    "pass": "green",
    "warn": "yellow",
    "fail": "red",
    "succeeded": "green",
    "running": "cyan",
    "interrupted": "yellow",
}
# Columns whose numbers are money (two decimals) or rates (shown as percentages).
MONEY = {"revenue", "avg_order_value"}
RATES = {"cancellation_rate", "refund_rate"}


def status(value: str | None) -> Text:
    return Text(value or "", style=STATUS_STYLES.get(value or "", ""))


def cell(column: str, value: Any) -> str | Text:
    if value is None:
        return Text("-", style="dim")
    if column in MONEY:
        return f"{value:,.2f}"
    if column in RATES:
        return f"{value * 100:.2f}%"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if column in ("status", "outcome"):
        return status(value)
    return str(value)


def rows_table(title: str, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> Table:
    numeric = {c for c in columns if any(isinstance(r.get(c), int | float) for r in rows)}
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, justify="right" if column in numeric else "left")
    for row in rows:
        table.add_row(*(cell(c, row.get(c)) for c in columns))
    return table


def time_of(value: str | None) -> str:
    """An ISO timestamp to the second, as the API sent it (UTC)."""
    return value[:19].replace("T", " ") if value else ""


def batch_list(batches: Sequence[dict[str, Any]]) -> Table:
    table = Table(title=f"{len(batches)} batches", title_justify="left")
    # A batch id is what the other commands take: never shortened.
    table.add_column("batch_id", no_wrap=True, min_width=36)
    for column in ("dataset", "status", "file_name", "received_at (UTC)"):
        table.add_column(column)
    for column in ("rows_in", "valid", "rejected", "duplicate"):
        table.add_column(column, justify="right")
    table.add_column("error")
    for b in batches:
        counts = b["counts"]
        table.add_row(
            b["batch_id"],
            b["dataset"],
            status(b["status"]),
            b["file_name"],
            time_of(b["received_at"]),
            *(cell("n", counts[c]) for c in ("rows_in", "rows_valid", "rows_rejected", "rows_duplicate")),
            b["error"] or "",
        )
    return table


def failed_checks(batch: dict[str, Any]) -> list[dict[str, Any]]:
    return [q for q in batch["quality"] if q["status"] == "fail"]


def quality_table(title: str, results: Sequence[dict[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("check", "severity", "status", "observed", "threshold", "failing sample"):
        table.add_column(column)
    for q in results:
        sample = ", ".join(map(str, q["failing_sample"][:5]))
        table.add_row(
            q["check_name"], q["severity"], status(q["status"]), q["observed"] or "", q["threshold"] or "", sample
        )
    return table


def batch_detail(batch: dict[str, Any]) -> Group:
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    counts = batch["counts"]
    for label, value in (
        ("batch", batch["batch_id"]),
        ("dataset", batch["dataset"]),
        ("status", status(batch["status"])),
        ("file", f"{batch['file_name']} ({batch['size_bytes']:,} bytes, sha256 {batch['sha256'][:16]}…)"),
        ("received", time_of(batch["received_at"]) + " UTC"),
        ("finished", time_of(batch["finished_at"]) + " UTC" if batch["finished_at"] else "-"),
        (
            "rows",
            ", ".join(
                f"{name} {cell('n', counts['rows_' + name])}" for name in ("in", "valid", "rejected", "duplicate")
            ),
        ),
        ("schema drift", ", ".join(batch["schema_drift"]) or "-"),
        ("error", batch["error"] or "-"),
    ):
        summary.add_row(label, value)
    stages = Table(title="stages", title_justify="left")
    for column in ("stage", "status", "attempts", "started (UTC)", "duration", "worker", "error"):
        stages.add_column(column, justify="right" if column in ("attempts", "duration") else "left")
    for s in batch["stages"]:
        duration = f"{s['duration_ms'] / 1000:.2f}s" if s["duration_ms"] is not None else "-"
        stages.add_row(
            s["stage"],
            status(s["status"]),
            str(s["attempts"]),
            time_of(s["started_at"]),
            duration,
            s["worker"] or "",
            s["error"] or "",
        )
    parts: list[Any] = [summary, stages]
    if batch["quality"]:
        parts.append(quality_table("quality checks", batch["quality"]))
    return Group(*parts)


def text_of(value: Any) -> str:
    return "" if value is None else str(value)


def rejects(page: dict[str, Any], *, title: str | None = None) -> Table:
    rows = page["rejects"]
    # The contract's column order (a record keeps no order of its own), then any extra columns.
    contract = CONTRACTS[Dataset(page["dataset"])].column_names
    seen = {c for r in rows for c in r["record"]}
    columns = [c for c in contract if c in seen] + sorted(seen.difference(contract))
    table = Table(
        title=title or f"rejected rows of {page['batch_id']} ({page['rows_rejected'] or 0:,} in all)",
        title_justify="left",
    )
    table.add_column("line", justify="right")
    table.add_column("reasons", style="red", overflow="fold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(str(r["source_line"]), ", ".join(r["reasons"]), *(text_of(r["record"].get(c)) for c in columns))
    return table


def summary(body: dict[str, Any]) -> Table:
    table = Table(title=f"KPIs {body['from']} - {body['to']}", title_justify="left")
    table.add_column("kpi")
    table.add_column("value", justify="right")
    for name, value in body.items():
        if name not in ("from", "to"):
            table.add_row(name, cell(name, value))
    return table
