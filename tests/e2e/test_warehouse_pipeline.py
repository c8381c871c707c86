"""A customers, a products and a sales file through the running platform to ``loaded``: the dimension rows are
the files' histories and every fact is bound to the version valid at its transaction_ts."""

from __future__ import annotations

import asyncio
import csv
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from devtools.sampledata import GeneratorConfig, write_customers, write_products, write_sales
from tests.conftest import Platform
from tests.e2e.test_sales_pipeline import post_file, wait_terminal
from tests.kpi_exports import ENDPOINTS, assert_exports_equal_json
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


def _own_keys(path: Path, columns: tuple[str, ...], prefix: str = "W") -> Path:
    """The file with ``prefix`` before every key, so its rows share no key with another test's."""
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    indexes = [rows[0].index(c) for c in columns]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(rows[0])
        for row in rows[1:]:
            for i in indexes:
                if i < len(row) and row[i].strip():
                    row[i] = prefix + row[i]
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


@pytest.fixture(scope="module")
def loaded(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A customers, a products and a sales file of this module's own keys, each loaded; their paths."""
    folder = tmp_path_factory.mktemp("warehouse")
    customers = _own_keys(write_customers(CONFIG, folder / "customers.csv"), ("customer_id",))
    products = _own_keys(write_products(CONFIG, folder / "products.csv"), ("product_id",))
    sales = _own_keys(write_sales(CONFIG, folder / "sales.csv"), ("transaction_id", "customer_id", "product_id"))
    with platform.client("ingest:write", "batches:read") as client:
        for path, dataset in ((customers, "customers"), (products, "products"), (sales, "sales")):
            accepted = post_file(client, platform, path, dataset)
            assert accepted.status_code == 202, accepted.text
            batch = wait_terminal(client, platform, accepted.json()["batch_id"])
            assert batch["status"] == "loaded", batch
            assert [s["status"] for s in batch["stages"]] == ["succeeded"] * 4, batch
    return customers, products, sales


def test_customers_products_and_sales_files_are_loaded_point_in_time(
    platform: Platform, loaded: tuple[Path, Path, Path]
) -> None:
    customers, products, sales = loaded
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


# What the API's range endpoints must say, recomputed from fact_sales and the versions the facts are bound to.
RECOMPUTED = {
    "categories": "p.category",
    "payment_methods": "f.payment_method",
    "states": "c.country, c.state",
}
MEASURES = """count(*) FILTER (WHERE f.status = 'completed') AS orders,
    coalesce(sum(f.total_amount) FILTER (WHERE f.status = 'completed'), 0) AS revenue,
    coalesce(sum(f.quantity) FILTER (WHERE f.status = 'completed'), 0) AS units, count(*) AS transactions,
    count(*) FILTER (WHERE f.status = 'cancelled') AS cancelled,
    count(*) FILTER (WHERE f.status = 'refunded') AS refunded"""
FACTS_IN_RANGE = """processed.fact_sales f
    LEFT JOIN processed.dim_customers c ON c.customer_key = f.customer_key
    LEFT JOIN processed.dim_products p ON p.product_key = f.product_key
    WHERE f.date_key BETWEEN $1 AND $2"""


async def _recomputed(database_url: str, start: date, end: date) -> dict[str, Any]:
    keys = (int(start.strftime("%Y%m%d")), int(end.strftime("%Y%m%d")))
    conn = await asyncpg.connect(database_url)
    try:
        summary = dict(
            await conn.fetchrow(
                f"""SELECT {MEASURES},
                           count(DISTINCT c.customer_id) FILTER (WHERE f.status = 'completed') AS distinct_customers
                    FROM {FACTS_IN_RANGE}""",
                *keys,
            )
        )
        groups = {}
        for name, columns in RECOMPUTED.items():
            rows = await conn.fetch(f"SELECT {columns}, {MEASURES} FROM {FACTS_IN_RANGE} GROUP BY {columns}", *keys)
            groups[name] = [dict(r) for r in rows]
        products = await conn.fetch(
            f"""SELECT p.product_id, {MEASURES} FROM {FACTS_IN_RANGE} AND p.product_id IS NOT NULL
                GROUP BY p.product_id""",
            *keys,
        )
        return {"summary": summary, **groups, "products": [dict(r) for r in products]}
    finally:
        await conn.close()


def _by(rows: list[dict[str, Any]], keys: tuple[str, ...], measures: tuple[str, ...]) -> dict[Any, tuple[Any, ...]]:
    return {tuple(r[k] for k in keys): tuple(float(r[m]) for m in measures) for r in rows}


def test_the_api_range_figures_agree_with_the_facts(platform: Platform, loaded: tuple[Path, Path, Path]) -> None:
    """After this module's loads (and whatever other tests loaded on those dates): summary, breakdowns and top
    products through the running API, under its own database role, against a recomputation from the facts."""
    start, end = CONFIG.start, CONFIG.start + timedelta(days=CONFIG.days)
    want = asyncio.run(_recomputed(platform.settings.database_url, start, end))
    assert want["summary"]["transactions"] > 0, "the loads above should have left facts in the range"
    params = {"from": start.isoformat(), "to": end.isoformat()}
    with platform.client("kpis:read") as client:

        def get(path: str, **extra: object) -> dict[str, Any]:
            response = client.get(f"{platform.api}/v1/kpis/{path}", params={**params, **extra})
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            return body

        summary = get("summary")
        for measure in ("orders", "revenue", "units", "transactions", "cancelled", "refunded", "distinct_customers"):
            assert summary[measure] == float(want["summary"][measure]), measure
        additive = ("orders", "revenue", "units", "transactions")
        for path, field, keys in (
            ("categories", "categories", ("category",)),
            ("payment-methods", "payment_methods", ("payment_method",)),
            ("states", "states", ("country", "state")),
        ):
            got = get(path)[field]
            assert _by(got, keys, additive) == _by(want[field], keys, additive), path
            revenues = [row["revenue"] for row in got]
            assert revenues == sorted(revenues, reverse=True), path
        top = get("top-products", limit=5)["products"]
        expected = sorted(want["products"], key=lambda r: (-r["revenue"], r["product_id"]))[:5]
        measures = ("orders", "revenue", "units", "cancelled", "refunded")
        assert [(r["product_id"], *(r[m] for m in measures)) for r in top] == [
            (r["product_id"], *(float(r[m]) for m in measures)) for r in expected
        ]


def test_the_running_api_exports_what_its_json_holds(platform: Platform, loaded: tuple[Path, Path, Path]) -> None:
    """The api process of the platform (its own role, its uvicorn) answers every KPI endpoint of this module's
    range as CSV and Parquet holding its JSON's figures; an unknown format is a 422 in the envelope."""
    params = {"from": CONFIG.start.isoformat(), "to": (CONFIG.start + timedelta(days=CONFIG.days)).isoformat()}
    with platform.client("kpis:read") as client:
        for endpoint in ENDPOINTS:
            assert_exports_equal_json(client, platform.api, endpoint, params)
        refused = client.get(f"{platform.api}/v1/kpis/daily", params={**params, "format": "xls"})
        assert (refused.status_code, refused.json()["error"]["code"]) == (422, "unsupported_format")
