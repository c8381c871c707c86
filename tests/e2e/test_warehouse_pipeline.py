"""A customers, a products and a sales file through the running platform to ``loaded``: the dimension rows are
the files' histories and every fact is bound to the version valid at its transaction_ts."""

from __future__ import annotations

import asyncio
import csv
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from shared.sampledata import GeneratorConfig, write_customers, write_products, write_sales
from tests.conftest import Platform
from tests.e2e.test_sales_pipeline import post_file, wait_terminal
from tests.reference import load_valid_dimension, load_valid_sales

pytestmark = pytest.mark.e2e

# Keys of their own (seed and sizes unlike the other e2e tests'), so this test's rows are its own.
CONFIG = GeneratorConfig(
    seed=29, customers=150, products=40, sales=1_500, dimension_dirty_rate=0.1, start=date(2022, 6, 1), days=20
)


async def _warehouse(database_url: str, transaction_ids: list[str]) -> dict[str, Any]:
    conn = await asyncpg.connect(database_url)
    try:
        dims = {}
        for dataset, table, key, columns in (
            ("customers", "dim_customers", "customer_id", "customer_name, email, city, state, country, is_active"),
            ("products", "dim_products", "product_id", "product_name, category, created_at"),
        ):
            rows = await conn.fetch(
                f"""SELECT {key} AS key, valid_from, valid_to, is_current, is_inferred, {columns}
                    FROM processed.{table} ORDER BY {key}, valid_from"""
            )
            dims[dataset] = [tuple(r) for r in rows]
        facts = await conn.fetch(
            """SELECT f.transaction_id, f.transaction_ts, c.customer_id, c.valid_from AS c_from, c.valid_to AS c_to,
                      c.is_inferred AS c_inferred, p.product_id, p.valid_from AS p_from, p.valid_to AS p_to
               FROM processed.fact_sales f
               LEFT JOIN processed.dim_customers c ON c.customer_key = f.customer_key
               LEFT JOIN processed.dim_products p ON p.product_key = f.product_key
               WHERE f.transaction_id = ANY($1::text[])""",
            transaction_ids,
        )
        return {"dims": dims, "facts": {r["transaction_id"]: dict(r) for r in facts}}
    finally:
        await conn.close()


def _own_keys(path: Path, columns: tuple[str, ...]) -> Path:
    """The file with ``W`` before every key, so its rows share no key with another test's."""
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    indexes = [rows[0].index(c) for c in columns]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(rows[0])
        for row in rows[1:]:
            for i in indexes:
                if i < len(row) and row[i].strip():
                    row[i] = "W" + row[i]
            writer.writerow(row)
    return path


def _expected_versions(path: Path, dataset: str) -> dict[str, list[tuple[Any, ...]]]:
    """key -> [(valid_from, attributes…)]: the file's valid records in updated_at order, equal neighbours merged."""
    records = load_valid_dimension(path, dataset)
    by_key: dict[str, list[tuple[Any, ...]]] = {}
    for (key, updated_at), record in sorted(records.items(), key=lambda item: (item[0][0], item[0][1])):
        values = record.values[1:-1]  # contract order: the key first, updated_at last
        history = by_key.setdefault(key, [])
        if not history or history[-1][1:] != values:
            history.append((updated_at, *values))
    return by_key


def test_customers_products_and_sales_files_are_loaded_point_in_time(platform: Platform, tmp_path: Path) -> None:
    customers = _own_keys(write_customers(CONFIG, tmp_path / "customers.csv"), ("customer_id",))
    products = _own_keys(write_products(CONFIG, tmp_path / "products.csv"), ("product_id",))
    sales = _own_keys(write_sales(CONFIG, tmp_path / "sales.csv"), ("transaction_id", "customer_id", "product_id"))
    with platform.client("ingest:write", "batches:read") as client:
        for path, dataset in ((customers, "customers"), (products, "products"), (sales, "sales")):
            accepted = post_file(client, platform, path, dataset)
            assert accepted.status_code == 202, accepted.text
            batch = wait_terminal(client, platform, accepted.json()["batch_id"])
            assert batch["status"] == "loaded", batch
            assert [s["status"] for s in batch["stages"]] == ["succeeded"] * 4, batch

    valid_sales = load_valid_sales(sales)
    got = asyncio.run(_warehouse(platform.settings.database_url, list(valid_sales)))

    for dataset, path in (("customers", customers), ("products", products)):
        expected = _expected_versions(path, dataset)
        rows = [r for r in got["dims"][dataset] if r[0] in expected]
        want = []
        for key, history in sorted(expected.items()):
            for i, (valid_from, *values) in enumerate(history):
                valid_to = history[i + 1][0] if i + 1 < len(history) else None
                want.append((key, valid_from, valid_to, valid_to is None, False, *values))
        assert [(*r[:2], None if r[3] else r[2], *r[3:]) for r in rows] == want, dataset
        assert any(len(h) > 1 for h in expected.values()), "the file should hold later versions of some keys"

    assert set(got["facts"]) == set(valid_sales)
    for transaction_id, sale in valid_sales.items():
        fact = got["facts"][transaction_id]
        assert fact["customer_id"] == sale.customer_id and fact["product_id"] == sale.product_id
        ts = sale.transaction_ts
        for prefix in ("c", "p"):
            # inside its version, or before the key's first version (the first version then)
            assert ts < fact[f"{prefix}_to"], (transaction_id, fact)
            if ts < fact[f"{prefix}_from"]:
                history = [
                    r[1]
                    for r in got["dims"]["customers" if prefix == "c" else "products"]
                    if r[0] == fact["customer_id" if prefix == "c" else "product_id"]
                ]
                assert fact[f"{prefix}_from"] == min(history), (transaction_id, fact)
        assert not fact["c_inferred"]
