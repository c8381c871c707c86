"""Reading the API's KPI exports back, for comparing them with the JSON of the same request."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

# endpoint under /v1/kpis/ -> the JSON's list of rows (None: the summary, one object)
ENDPOINTS: dict[str, str | None] = {
    "daily": "days",
    "summary": None,
    "categories": "categories",
    "payment-methods": "payment_methods",
    "states": "states",
    "top-products": "products",
}


def json_body(client: httpx.Client, url: str, params: dict[str, Any]) -> dict[str, Any]:
    response = client.get(url, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    # Money as the exact decimal the JSON number spells, not a float's neighbour.
    body: dict[str, Any] = json.loads(response.text, parse_float=Decimal)
    return body


def json_rows(endpoint: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    listed = ENDPOINTS[endpoint]
    return [body] if listed is None else list(body[listed])


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def parquet_rows(content: bytes) -> list[dict[str, Any]]:
    """The file's rows as the JSON holds them: dates as text; decimals compare by value (12.0 == 12.00)."""
    rows = pq.read_table(pa.BufferReader(content)).to_pylist()
    return [{k: v.isoformat() if isinstance(v, date) else v for k, v in row.items()} for row in rows]


def _equal(csv_value: str, json_value: Any) -> bool:
    if json_value is None:
        return csv_value == ""
    if isinstance(json_value, Decimal):
        return Decimal(csv_value) == json_value
    return csv_value == str(json_value)


def csv_differences(rows: list[dict[str, str]], want: list[dict[str, Any]]) -> list[tuple[int, str, str, Any]]:
    """(row, column, CSV text, JSON value) wherever the CSV does not hold the JSON's value; the same columns."""
    assert len(rows) == len(want), (len(rows), len(want))
    assert [set(r) for r in rows] == [set(w) for w in want]
    return [
        (i, column, row[column], value)
        for i, (row, expected) in enumerate(zip(rows, want, strict=True))
        for column, value in expected.items()
        if not _equal(row[column], value)
    ]


def assert_exports_equal_json(client: httpx.Client, api: str, endpoint: str, params: dict[str, Any]) -> None:
    """The endpoint's CSV (by ``?format=``) and Parquet (by ``Accept``) hold its JSON's rows, every column."""
    url = f"{api}/v1/kpis/{endpoint}"
    want = json_rows(endpoint, json_body(client, url, params))
    as_csv = client.get(url, params={**params, "format": "csv"})
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
    differing = csv_differences(csv_rows(as_csv.text), want)
    assert not differing, (endpoint, differing[:10])
    as_parquet = client.get(url, params=params, headers={"Accept": "application/vnd.apache.parquet"})
    assert as_parquet.status_code == 200, as_parquet.text
    assert as_parquet.headers["content-type"] == "application/vnd.apache.parquet"
    assert parquet_rows(as_parquet.content) == want, endpoint
