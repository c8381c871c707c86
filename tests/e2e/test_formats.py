"""Every accepted format of a sales file goes through the whole pipeline to the same KPIs."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from devtools.sampledata import GeneratorConfig, write_sales
from tests.conftest import Platform
from tests.e2e.test_sales_pipeline import api_kpis, assert_counts_match, assert_kpis_match, wait_terminal
from tests.reference import daily_kpis

pytestmark = pytest.mark.e2e

START = date(2022, 6, 1)


def records(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def as_json(path: Path) -> bytes:
    return json.dumps(records(path), indent=1).encode()


def as_ndjson(path: Path) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records(path))


def as_parquet(path: Path) -> bytes:
    rows = records(path)
    table = pa.table({name: [r[name] or None for r in rows] for name in rows[0]})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def as_semicolon_crlf_bom(path: Path) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    with path.open(newline="", encoding="utf-8") as fh:
        writer.writerows(csv.reader(fh))
    return b"\xef\xbb\xbf" + out.getvalue().encode()


def as_csv(path: Path) -> bytes:
    return path.read_bytes()


VARIANTS: dict[str, tuple[Callable[[Path], bytes], str, str, dict[str, str]]] = {
    "csv": (as_csv, "sales.csv", "text/csv", {}),
    "csv-semicolon-crlf-bom": (as_semicolon_crlf_bom, "sales.csv", "text/csv", {}),
    "json": (as_json, "sales.json", "application/json", {}),
    "ndjson": (as_ndjson, "sales.ndjson", "application/x-ndjson", {}),
    "parquet": (as_parquet, "sales.parquet", "application/vnd.apache.parquet", {}),
    "csv-gzip-by-name": (lambda p: gzip.compress(as_csv(p)), "sales.csv.gz", "application/octet-stream", {}),
    "json-gzip-by-encoding": (
        lambda p: gzip.compress(as_json(p)),
        "sales",
        "application/json",
        {"Content-Encoding": "gzip"},
    ),
    "ndjson-sniffed": (as_ndjson, "upload", "application/octet-stream", {}),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_each_format_loads_to_the_kpis_of_its_csv(platform: Platform, tmp_path: Path, variant: str) -> None:
    config = GeneratorConfig(seed=11, sales=400, dirty_rate=0.05, start=START, days=3)
    path = write_sales(config, tmp_path / "sales.csv")
    convert, name, content_type, headers = VARIANTS[variant]
    body = convert(path)
    with platform.client("ingest:write", "batches:read", "kpis:read") as client:
        response = client.post(
            f"{platform.ingest}/v1/datasets/sales/files",
            content=body,
            headers={"Content-Type": content_type, "X-File-Name": name, **headers},
        )
        assert response.status_code in (200, 202), response.text
        batch = wait_terminal(client, platform, response.json()["batch_id"])
        assert batch["status"] == "loaded", batch
        assert_counts_match(batch, path)
        assert_kpis_match(api_kpis(client, platform, START, date(2022, 6, 30)), daily_kpis(path))
