"""A JSON or NDJSON record past the depth or size limit, deep inside a file (beyond the first MiB the ingest
inspects), is one rejected row: the other rows stage and the worker's memory is never the price."""

from __future__ import annotations

import csv
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from services.transform.service import JsonLimits, run_job
from shared.datasets import Dataset
from shared.jsonlimits import MAX_JSON_DEPTH, MAX_JSON_RECORD_BYTES

NOW = datetime(2025, 6, 1, tzinfo=UTC)
# Enough records of ~80 bytes to put the hostile one past the ingest's 1 MiB head.
GOOD_BEFORE = 14_000


def customer(n: int) -> str:
    return json.dumps({"customer_id": f"JC-{n}", "updated_at": "2025-01-01T00:00:00Z", "city": "Recife"})


def hostile(kind: str) -> str:
    """A customers record one level past the depth limit, 100,000 deep, or larger than the size limit;
    written without recursion."""
    head = json.dumps({"customer_id": "JC-hostile", "updated_at": "2025-01-01T00:00:00Z"})[:-1]
    if kind == "large":
        return f'{head}, "city": "{"a" * (MAX_JSON_RECORD_BYTES + 1)}"}}'
    nested = MAX_JSON_DEPTH if kind == "deep-limit" else 100_000
    return f'{head}, "x": {"[" * nested}{"]" * nested}}}'


def write(path: Path, file_format: str, records: list[str]) -> Path:
    if file_format == "ndjson":
        path.write_text("".join(f"{r}\n" for r in records), encoding="utf-8")
    else:
        path.write_text("[\n" + ",\n".join(records) + "\n]\n", encoding="utf-8")
    return path


def read_parts(directory: Path) -> list[list[str]]:
    # A reject keeps its record's text, which may be as long as the record.
    csv.field_size_limit(4 * MAX_JSON_RECORD_BYTES)
    rows: list[list[str]] = []
    for part in sorted(directory.glob("part-*")):
        with part.open(encoding="utf-8", newline="") as handle:
            rows.extend(csv.reader(handle))
    return rows


# Spark's own NDJSON reader already refuses 100,000 levels (its parser stops at 1,000); ijson does not.
@pytest.mark.parametrize(
    ("file_format", "kind"),
    [("ndjson", "deep-limit"), ("ndjson", "large"), ("json", "deep-limit"), ("json", "deep-100000"), ("json", "large")],
)
def test_a_record_past_the_json_limits_is_rejected_and_the_others_stage(
    spark: SparkSession, tmp_path: Path, file_format: str, kind: str
) -> None:
    records = [customer(n) for n in range(GOOD_BEFORE)] + [hostile(kind), customer(GOOD_BEFORE)]
    source = write(tmp_path / f"source.{file_format}", file_format, records)
    assert len("".join(records[:GOOD_BEFORE])) > 1024 * 1024

    output = run_job(
        spark,
        dataset=Dataset.customers,
        batch_id=uuid.uuid4(),
        source=source,
        out=tmp_path / "out",
        now=NOW,
        file_format=file_format,
        json_limits=JsonLimits(MAX_JSON_DEPTH, MAX_JSON_RECORD_BYTES),
    )

    counts = output.counts
    assert (counts.rows_in, counts.rows_valid, counts.rows_rejected) == (GOOD_BEFORE + 2, GOOD_BEFORE + 1, 1)
    rejects = read_parts(output.rejects_csv)
    # NDJSON numbers records by their line, a JSON array by their position: here both are the same.
    assert [(int(r[1]), r[2]) for r in rejects] == [
        (GOOD_BEFORE + 1, "{malformed_row,missing_customer_id,missing_updated_at}")
    ]
