"""Every format of every dataset at the door: detected, checked against its contract, stored as sent."""

from __future__ import annotations

import asyncio
import csv
import gzip
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ops.admin import create_key
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from shared.datasets import CONTRACTS, Dataset
from shared.objectstore import create_object_store
from shared.settings import PlatformSettings
from tests.conftest import settings_from
from tests.http_server import serve

SAMPLES: dict[Dataset, list[dict[str, str]]] = {
    Dataset.customers: [
        {
            "customer_id": "FC-1",
            "customer_name": 'Ana "Nana" Lima',
            "email": "ana@example.com",
            "city": "Recife",
            "state": "PE",
            "country": "BR",
            "is_active": "true",
            "updated_at": "2024-01-01T00:00:00Z",
        }
    ],
    Dataset.products: [
        {
            "product_id": "FP-1",
            "product_name": "Café, 1kg",
            "category": "food",
            "created_at": "2023-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
        }
    ],
    Dataset.sales: [
        {
            "transaction_id": "FT-1",
            "transaction_ts": "2024-01-01T10:00:00Z",
            "customer_id": "FC-1",
            "product_id": "FP-1",
            "quantity": "2",
            "unit_price": "1.50",
            "total_amount": "3.00",
            "payment_method": "pix",
            "status": "completed",
        }
    ],
}


def rows(dataset: Dataset, tag: str) -> list[dict[str, str]]:
    """The dataset's sample with a key unique to the test case, so every case is new content."""
    key = CONTRACTS[dataset].key
    return [{**r, key: f"{r[key]}-{tag}"} for r in SAMPLES[dataset]]


def to_csv(records: list[dict[str, str]], *, delimiter: str = ",", newline: str = "\n", bom: bool = False) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(records[0]), delimiter=delimiter, lineterminator=newline)
    writer.writeheader()
    writer.writerows(records)
    return (b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode()


def to_parquet(records: list[dict[str, str]]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({k: [r[k] for r in records] for k in records[0]}), sink)
    return sink.getvalue()


Variant = tuple[Callable[[list[dict[str, str]]], bytes], str, str, dict[str, str], str, str, str | None]
# name → (encode, file name, content type, extra headers, expected format, compression, delimiter)
VARIANTS: dict[str, Variant] = {
    "csv": (to_csv, "f.csv", "text/csv", {}, "csv", "none", ","),
    "csv-semicolon-bom-crlf": (
        lambda r: to_csv(r, delimiter=";", newline="\r\n", bom=True),
        "f.csv",
        "text/csv",
        {},
        "csv",
        "none",
        ";",
    ),
    "csv-by-name": (to_csv, "f.csv", "application/octet-stream", {}, "csv", "none", ","),
    "json": (lambda r: json.dumps(r).encode(), "f.json", "application/json", {}, "json", "none", None),
    "ndjson": (
        lambda r: b"".join(json.dumps(x).encode() + b"\n" for x in r),
        "f.ndjson",
        "application/x-ndjson",
        {},
        "ndjson",
        "none",
        None,
    ),
    "parquet": (to_parquet, "f.parquet", "application/vnd.apache.parquet", {}, "parquet", "none", None),
    "parquet-sniffed": (to_parquet, "upload", "application/octet-stream", {}, "parquet", "none", None),
    "csv-gzip-encoding": (
        lambda r: gzip.compress(to_csv(r)),
        "f.csv",
        "text/csv",
        {"Content-Encoding": "gzip"},
        "csv",
        "gzip",
        ",",
    ),
    "json-gz-name": (
        lambda r: gzip.compress(json.dumps(r).encode()),
        "f.json.gz",
        "application/octet-stream",
        {},
        "json",
        "gzip",
        None,
    ),
    "ndjson-gz-sniffed": (
        lambda r: gzip.compress(b"".join(json.dumps(x).encode() + b"\n" for x in r)),
        "upload",
        "application/octet-stream",
        {},
        "ndjson",
        "gzip",
        None,
    ),
}


@pytest.fixture(scope="module")
def ingest_url(test_env: dict[str, str]) -> Iterator[str]:
    with serve(create_app(settings_from(test_env, IngestSettings))) as url:
        yield url


@pytest.fixture(scope="module")
def client(settings: PlatformSettings) -> Iterator[httpx.Client]:
    key = asyncio.run(create_key(settings, name="formats-test", scopes=["ingest:write"]))
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
        yield c


async def _batch(database_url: str, batch_id: str) -> dict[str, Any]:
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            """SELECT dataset, file_format, compression, csv_delimiter, header, object_bucket, object_key
               FROM ops.batches WHERE batch_id = $1""",
            batch_id,
        )
        assert row is not None
        return dict(row)
    finally:
        await conn.close()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("dataset", list(Dataset), ids=lambda d: d.value)
def test_every_format_of_every_dataset_is_accepted_as_what_it_is(
    ingest_url: str, client: httpx.Client, settings: PlatformSettings, dataset: Dataset, variant: str
) -> None:
    encode, name, content_type, headers, fmt, compression, delimiter = VARIANTS[variant]
    body = encode(rows(dataset, variant))
    response = client.post(
        f"{ingest_url}/v1/datasets/{dataset.value}/files",
        content=body,
        headers={"Content-Type": content_type, "X-File-Name": name, **headers},
    )
    assert response.status_code == 202, response.text
    assert response.json()["sha256"] == hashlib.sha256(body).hexdigest()
    batch = asyncio.run(_batch(settings.database_url, response.json()["batch_id"]))
    assert (batch["dataset"], batch["file_format"], batch["compression"], batch["csv_delimiter"]) == (
        dataset.value,
        fmt,
        compression,
        delimiter,
    )
    assert batch["header"] == list(CONTRACTS[dataset].column_names)
    store = create_object_store(settings)
    with store.open(batch["object_bucket"], batch["object_key"]) as stored:
        assert stored.read() == body


@pytest.mark.parametrize("dataset", list(Dataset), ids=lambda d: d.value)
def test_each_dataset_names_its_own_missing_required_columns(
    ingest_url: str, client: httpx.Client, dataset: Dataset
) -> None:
    required = CONTRACTS[dataset].required
    records = [{k: v for k, v in r.items() if k != required[-1]} for r in rows(dataset, "missing")]
    response = client.post(
        f"{ingest_url}/v1/datasets/{dataset.value}/files", content=to_csv(records), headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"]["missing_columns"] == [required[-1]]
