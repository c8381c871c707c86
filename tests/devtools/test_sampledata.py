"""Sample-data generator against its contract, and the sales reference against hand-written rows."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from devtools.sampledata import (
    CATEGORIES,
    CUSTOMER_COLUMNS,
    INVALID_CUSTOMER_KINDS,
    INVALID_KINDS,
    INVALID_PRODUCT_KINDS,
    PAYMENT_METHODS,
    PRODUCT_COLUMNS,
    SALES_COLUMNS,
    STATUSES,
    GeneratedFiles,
    GeneratorConfig,
    generate,
    main,
    write_customers,
    write_products,
    write_sales,
)
from tests.reference import (
    count_dimension_rows,
    count_rows,
    daily_kpis,
    load_valid_dimension,
    load_valid_sales,
    parse_timestamp,
)

SMALL = GeneratorConfig(seed=7, customers=200, products=40, sales=3_000, dirty_rate=0.06)
CLEAN = GeneratorConfig(seed=7, customers=200, products=40, sales=3_000, dirty_rate=0.0)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        header, *rows = csv.reader(handle)
    return header, rows


@pytest.fixture(scope="module")
def dirty_files(tmp_path_factory: pytest.TempPathFactory) -> GeneratedFiles:
    return generate(SMALL, tmp_path_factory.mktemp("dirty"))


@pytest.fixture(scope="module")
def clean_files(tmp_path_factory: pytest.TempPathFactory) -> GeneratedFiles:
    return generate(CLEAN, tmp_path_factory.mktemp("clean"))


# --- generator ---------------------------------------------------------------------------------------


def test_same_config_gives_byte_identical_files(dirty_files: GeneratedFiles, tmp_path: Path) -> None:
    again = generate(SMALL, tmp_path / "again")
    for name in ("customers", "products", "sales"):
        assert getattr(again, name).read_bytes() == getattr(dirty_files, name).read_bytes(), name


def test_write_sales_matches_generate(dirty_files: GeneratedFiles, tmp_path: Path) -> None:
    path = write_sales(SMALL, tmp_path / "only" / "sales.csv")
    assert path.read_bytes() == dirty_files.sales.read_bytes()


def test_other_seed_gives_other_data(dirty_files: GeneratedFiles, tmp_path: Path) -> None:
    other = generate(replace(SMALL, seed=8), tmp_path)
    for name in ("customers", "products", "sales"):
        assert getattr(other, name).read_bytes() != getattr(dirty_files, name).read_bytes(), name


def test_headers_row_counts_and_format(dirty_files: GeneratedFiles) -> None:
    for path, columns, count in (
        (dirty_files.customers, CUSTOMER_COLUMNS, SMALL.customers),
        (dirty_files.products, PRODUCT_COLUMNS, SMALL.products),
        (dirty_files.sales, SALES_COLUMNS, SMALL.sales),
    ):
        data = path.read_bytes()
        assert b"\r" not in data
        assert data.endswith(b"\n")
        header, rows = _rows(path)
        assert header == list(columns)
        assert len(rows) == count
        assert all(len(row) == len(columns) for row in rows)


def test_customers_and_products_values(dirty_files: GeneratedFiles) -> None:
    _, customers = _rows(dirty_files.customers)
    assert [row[0] for row in customers] == [f"C{n:06d}" for n in range(1, SMALL.customers + 1)]
    countries = Counter(row[5] for row in customers)
    assert set(countries) <= {"BR", "US", "PT", "AR"}
    assert countries["BR"] > len(customers) / 2
    assert {row[6] for row in customers} == {"true", "false"}
    assert all("@" in row[2] for row in customers)
    assert all(parse_timestamp(row[7]) is not None for row in customers)

    _, products = _rows(dirty_files.products)
    assert [row[0] for row in products] == [f"P{n:05d}" for n in range(1, SMALL.products + 1)]
    assert {row[2] for row in products} <= set(CATEGORIES)
    for row in products:
        created, updated = parse_timestamp(row[3]), parse_timestamp(row[4])
        assert created is not None and updated is not None and created <= updated


def test_clean_sales_are_all_valid_and_unique(clean_files: GeneratedFiles) -> None:
    assert count_rows(clean_files.sales, now=NOW) == (CLEAN.sales, CLEAN.sales, 0, 0)


def test_clean_sales_values(clean_files: GeneratedFiles) -> None:
    _, customers = _rows(clean_files.customers)
    _, products = _rows(clean_files.products)
    customer_ids = {row[0] for row in customers}
    product_ids = {row[0] for row in products}
    _, rows = _rows(clean_files.sales)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=CLEAN.days)
    previous = start
    statuses: Counter[str] = Counter()
    without_z = 0
    for tx, ts_text, customer, product, qty, price, total, payment, status in rows:
        assert len(tx) == 11 and tx.startswith("T")
        ts = parse_timestamp(ts_text)
        assert ts is not None and start <= ts < end
        assert ts >= previous  # clean rows are in non-decreasing time order
        previous = ts
        without_z += not ts_text.endswith("Z")
        assert customer in customer_ids and product in product_ids
        assert 1 <= int(qty) <= 10
        assert Decimal("1.00") <= Decimal(price) <= Decimal("999.99")
        assert price == f"{Decimal(price):.2f}" and total == f"{Decimal(total):.2f}"
        assert Decimal(total) == int(qty) * Decimal(price)
        assert payment in PAYMENT_METHODS
        statuses[status] += 1
    assert set(statuses) == set(STATUSES)
    assert 0.75 < statuses["completed"] / len(rows) < 0.85
    assert 0 < without_z < len(rows) / 5
    # Spread over the whole period, not bunched at the start.
    assert previous >= end - timedelta(days=1)


def test_dirty_sales_conservation(dirty_files: GeneratedFiles) -> None:
    rows_in, valid, rejected, duplicate = count_rows(dirty_files.sales, now=NOW)
    assert rows_in == SMALL.sales == valid + rejected + duplicate
    assert rejected > 0 and duplicate > 0
    # Every dirty row is either rejected or superseded, so together they are exactly the dirty count.
    assert rejected + duplicate == round(SMALL.sales * SMALL.dirty_rate) == SMALL.dirty_rows
    # Roughly thirds: duplicates + re-sends against invalid rows.
    assert abs(duplicate - 2 * rejected) <= 2


def _invalid_kinds(row: list[str]) -> set[str]:
    tx, ts, _customer, _product, qty, price, total, payment, status = row
    kinds = set()
    if not tx:
        kinds.add("empty_transaction_id")
    if not ts:
        kinds.add("empty_transaction_ts")
    elif parse_timestamp(ts) is None:
        kinds.add("unparseable_transaction_ts")
    if qty.lstrip("-").isdigit() and int(qty) <= 0:
        kinds.add("non_positive_quantity")
    if not qty.lstrip("-").isdigit():
        kinds.add("non_integer_quantity")
    if price.startswith("-"):
        kinds.add("negative_unit_price")
    if qty.isdigit() and abs(Decimal(total) - int(qty) * Decimal(price)) > Decimal("0.01"):
        kinds.add("total_mismatch")
    if status not in STATUSES:
        kinds.add("unknown_status")
    if payment not in PAYMENT_METHODS:
        kinds.add("unknown_payment_method")
    return kinds


def test_every_dirty_kind_appears(dirty_files: GeneratedFiles) -> None:
    _, rows = _rows(dirty_files.sales)
    kinds: Counter[str] = Counter()
    for row in rows:
        found = _invalid_kinds(row)
        assert len(found) <= 1, row  # one broken rule per invalid row
        kinds.update(found)
    assert set(kinds) == set(INVALID_KINDS)
    assert kinds["unparseable_transaction_ts"] > 0 and "not-a-date" in {row[1] for row in rows}

    lines = [tuple(row) for row in rows]
    assert any(count > 1 for count in Counter(lines).values()), "no exact duplicate line"
    by_id: dict[str, set[str]] = {}
    for row in rows:
        if row[0] and not _invalid_kinds(row):
            by_id.setdefault(row[0], set()).add(row[8])
    assert any(len(statuses) > 1 for statuses in by_id.values()), "no re-sent transaction"

    # Invalid rows carry fresh ids: none of them collides with a valid row's id.
    invalid_ids = {row[0] for row in rows if row[0] and _invalid_kinds(row)}
    assert invalid_ids.isdisjoint(by_id)


def test_resent_status_is_final(dirty_files: GeneratedFiles) -> None:
    _, rows = _rows(dirty_files.sales)
    last_status = {row[0]: row[8] for row in rows if row[0] and not _invalid_kinds(row)}
    final = load_valid_sales(dirty_files.sales, now=NOW)
    assert {tx: record.status for tx, record in final.items()} == last_status


# --- dirty customers and products --------------------------------------------------------------------

DIRTY_DIMENSIONS = replace(SMALL, customers=600, products=150, dimension_dirty_rate=0.2)
WRITERS = {"customers": write_customers, "products": write_products}
SPOILED = {
    "customers": {
        "empty_customer_id": lambda row: row[0] == "",
        "empty_updated_at": lambda row: row[7] == "",
        "unparseable_updated_at": lambda row: row[7] != "" and parse_timestamp(row[7]) is None,
        "invalid_email": lambda row: "@" not in row[2],
        "invalid_is_active": lambda row: row[6] not in ("true", "false"),
    },
    "products": {
        "empty_product_id": lambda row: row[0] == "",
        "empty_updated_at": lambda row: row[4] == "",
        "unparseable_updated_at": lambda row: row[4] != "" and parse_timestamp(row[4]) is None,
        "unparseable_created_at": lambda row: parse_timestamp(row[3]) is None,
    },
}


@pytest.mark.parametrize("dataset", ["customers", "products"])
def test_dirty_dimensions_are_deterministic_and_match_generate(dataset: str, tmp_path: Path) -> None:
    files = generate(DIRTY_DIMENSIONS, tmp_path / "all")
    alone = WRITERS[dataset](DIRTY_DIMENSIONS, tmp_path / "alone.csv")
    assert alone.read_bytes() == getattr(files, dataset).read_bytes()
    assert alone.read_bytes() != getattr(generate(SMALL, tmp_path / "clean"), dataset).read_bytes()


@pytest.mark.parametrize("dataset", ["customers", "products"])
def test_dirty_dimensions_add_duplicates_versions_and_invalid_rows(dataset: str, tmp_path: Path) -> None:
    path = WRITERS[dataset](DIRTY_DIMENSIONS, tmp_path / f"{dataset}.csv")
    entities = getattr(DIRTY_DIMENSIONS, dataset)
    dirty = round(entities * DIRTY_DIMENSIONS.dimension_dirty_rate)
    duplicates, versions, invalid = (len(range(kind, dirty, 3)) for kind in range(3))
    assert count_dimension_rows(path, dataset, now=NOW) == (
        entities + dirty,
        entities + versions,
        invalid,
        duplicates,
    )

    _, rows = _rows(path)
    kinds: Counter[str] = Counter()
    for row in rows:
        found = {kind for kind, spoiled in SPOILED[dataset].items() if spoiled(row)}
        assert len(found) <= 1, row  # one broken rule per invalid row
        kinds.update(found)
    expected_kinds = INVALID_CUSTOMER_KINDS if dataset == "customers" else INVALID_PRODUCT_KINDS
    assert set(kinds) == set(expected_kinds) and sum(kinds.values()) == invalid

    # Every key keeps a valid version; a key's versions are distinct and none is after the sales period.
    final = load_valid_dimension(path, dataset, now=NOW)
    assert {key for key, _ in final} == {row[0] for row in rows if row[0]}
    assert len({key for key, _ in final}) == entities
    end = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=DIRTY_DIMENSIONS.days)
    assert max(updated for _, updated in final) <= end
    versioned = Counter(key for key, _ in final)
    assert sum(count - 1 for count in versioned.values()) == versions


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        GeneratorConfig(dirty_rate=1.0)
    with pytest.raises(ValueError):
        GeneratorConfig(dimension_dirty_rate=1.0)
    with pytest.raises(ValueError):
        GeneratorConfig(days=0)
    with pytest.raises(ValueError):
        GeneratorConfig(customers=0)


def test_tiny_and_empty_outputs(tmp_path: Path) -> None:
    empty = write_sales(GeneratorConfig(sales=0), tmp_path / "empty.csv")
    assert empty.read_text() == ",".join(SALES_COLUMNS) + "\n"
    one = write_sales(GeneratorConfig(sales=1, dirty_rate=0.9), tmp_path / "one.csv")
    assert count_rows(one, now=NOW) == (1, 1, 0, 0)


def test_cli_only_sales(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--out", str(tmp_path), "--sales", "500", "--seed", "3", "--dirty-rate", "0.1"]
    assert main([*argv, "--start", "2024-06-01", "--days", "3", "--only", "sales"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [str(tmp_path / "sales.csv")]
    assert not (tmp_path / "customers.csv").exists()
    config = GeneratorConfig(seed=3, sales=500, dirty_rate=0.1, start=date(2024, 6, 1), days=3)
    expected = write_sales(config, tmp_path / "expected.csv")
    assert (tmp_path / "sales.csv").read_bytes() == expected.read_bytes()
    assert set(daily_kpis(expected, now=NOW)) == {date(2024, 6, 1), date(2024, 6, 2), date(2024, 6, 3)}


def test_cli_dirty_customers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--out", str(tmp_path), "--customers", "50", "--dimension-dirty-rate", "0.2", "--only", "customers"]
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines() == [str(tmp_path / "customers.csv")]
    expected = write_customers(GeneratorConfig(customers=50, dimension_dirty_rate=0.2), tmp_path / "expected.csv")
    assert (tmp_path / "customers.csv").read_bytes() == expected.read_bytes()


# --- reference ---------------------------------------------------------------------------------------

HEADER = ",".join(SALES_COLUMNS)


def _csv(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "sales.csv"
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return path


def test_reference_last_valid_occurrence_wins(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "T1,2025-01-01T10:00:00Z,C1,P1,1,10.00,10.00,pix,pending",
        "T1,2025-01-01T10:00:00Z,C1,P1,1,10.00,10.00,pix,completed",
        "T1,2025-01-01T10:00:00Z,C1,P1,1,10.00,10.00,pix,shipped",  # invalid: does not replace
        "T2,2025-01-01T11:00:00Z,C2,P1,2,5.00,10.00,cash,completed",
        "T2,2025-01-01T11:00:00Z,C2,P1,2,5.00,10.00,cash,completed",  # exact duplicate
    )
    final = load_valid_sales(path, now=NOW)
    assert set(final) == {"T1", "T2"}
    assert final["T1"].status == "completed" and final["T1"].line == 3
    assert final["T2"].line == 6
    assert count_rows(path, now=NOW) == (5, 2, 1, 2)


def test_reference_normalises_fields(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        " T1 , 2025-01-01 10:00 ,  ,P1, 3 ,2.005,,PIX, Completed ",
        "T2,2025-01-01T10:00:00.123456+00:00,C1,,,,7.50,,",
    )
    final = load_valid_sales(path, now=NOW)
    first = final["T1"]
    assert first.transaction_ts == datetime(2025, 1, 1, 10, 0, tzinfo=UTC)
    assert first.customer_id is None
    assert first.unit_price == Decimal("2.01")  # ROUND_HALF_UP
    assert first.total_amount == Decimal("6.03")  # derived from quantity * unit_price
    assert (first.payment_method, first.status) == ("pix", "completed")
    second = final["T2"]
    assert second.transaction_ts.microsecond == 123456
    assert (second.quantity, second.unit_price, second.total_amount) == (None, None, Decimal("7.50"))
    assert second.status is None and second.payment_method is None


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2025-01-01T13:30:00+0330", datetime(2025, 1, 1, 10, 0, tzinfo=UTC)),
        ("2025-01-01T05:00-05", datetime(2025, 1, 1, 10, 0, tzinfo=UTC)),
        ("2025-01-01T10:00:00+05:3", None),
        ("2025-01-01T10:00:00+053", None),
    ],
)
def test_reference_reads_basic_and_hour_offsets(text: str, instant: datetime | None) -> None:
    assert parse_timestamp(text) == instant


def test_reference_total_tolerance(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "T1,2025-01-01T10:00:00Z,C1,P1,2,10.00,20.01,pix,completed",
        "T2,2025-01-01T10:00:00Z,C1,P1,2,10.00,19.99,pix,completed",
        "T3,2025-01-01T10:00:00Z,C1,P1,2,10.00,20.02,pix,completed",
        "T4,2025-01-01T10:00:00Z,C1,P1,2,10.00,19.98,pix,completed",
    )
    assert set(load_valid_sales(path, now=NOW)) == {"T1", "T2"}


@pytest.mark.parametrize(
    "line",
    [
        ",2025-01-01T10:00:00Z,C1,P1,1,1.00,1.00,pix,completed",
        "T9,,C1,P1,1,1.00,1.00,pix,completed",
        "T9,not-a-date,C1,P1,1,1.00,1.00,pix,completed",
        "T9,2025-01-01,C1,P1,1,1.00,1.00,pix,completed",
        "T9,2025-02-30T10:00:00Z,C1,P1,1,1.00,1.00,pix,completed",
        "T9,2025-01-01T10:00:00Z,C1,P1,0,1.00,0.00,pix,completed",
        "T9,2025-01-01T10:00:00Z,C1,P1,-1,1.00,-1.00,pix,completed",
        "T9,2025-01-01T10:00:00Z,C1,P1,abc,1.00,1.00,pix,completed",
        "T9,2025-01-01T10:00:00Z,C1,P1,1.5,1.00,1.50,pix,completed",
        "T9,2025-01-01T10:00:00Z,C1,P1,1,-1.00,-1.00,pix,completed",
        "T9,2025-01-01T10:00:00Z,C1,P1,1,x,1.00,pix,completed",
        "T9,2025-01-01T10:00:00Z,C1,P1,1,1.00,one,pix,completed",
        "T9,2025-01-01T10:00:00Z,C1,P1,1,1.00,1.00,pix,shipped",
        "T9,2025-01-01T10:00:00Z,C1,P1,1,1.00,1.00,bitcoin,completed",
    ],
)
def test_reference_rejects(tmp_path: Path, line: str) -> None:
    path = _csv(tmp_path, line)
    assert load_valid_sales(path, now=NOW) == {}
    assert count_rows(path, now=NOW) == (1, 0, 1, 0)


def test_reference_future_timestamp(tmp_path: Path) -> None:
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    path = _csv(
        tmp_path,
        "T1,2025-01-01T12:05:00Z,C1,P1,1,1.00,1.00,pix,completed",  # exactly now + 5 min: accepted
        "T2,2025-01-01T12:05:01Z,C1,P1,1,1.00,1.00,pix,completed",
        "T3,2025-01-01T09:05:01-03:00,C1,P1,1,1.00,1.00,pix,completed",  # 12:05:01 UTC
    )
    assert set(load_valid_sales(path, now=now)) == {"T1"}


def test_reference_daily_kpis(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "T1,2025-01-02T10:00:00Z,C1,P1,1,10.00,10.00,pix,completed",
        "T2,2025-01-02T11:00:00,C1,P1,2,5.00,10.00,pix,completed",  # no offset: UTC
        "T3,2025-01-02T12:00:00Z,C2,P1,1,0.01,0.01,pix,completed",
        "T4,2025-01-02T13:00:00Z,C3,P1,1,9.00,9.00,pix,cancelled",
        "T5,2025-01-02T14:00:00Z,C3,P1,1,9.00,9.00,pix,refunded",
        "T6,2025-01-03T01:30:00+03:00,C4,P1,3,0.99,2.97,pix,completed",  # 2025-01-02T22:30Z
        "T7,2025-01-04T00:30:00+01:00,C5,P1,1,1.00,1.00,pix,pending",  # 2025-01-03T23:30Z
        "T8,2025-01-05T10:00:00Z,,P1,,,,pix,completed",
        "T9,2025-01-06T10:00:00Z,C1,P1,1,1.00,1.00,pix,shipped",  # rejected: no Jan 6
    )
    kpis = daily_kpis(path, now=NOW)
    assert sorted(kpis) == [date(2025, 1, 2), date(2025, 1, 3), date(2025, 1, 5)]
    jan2 = kpis[date(2025, 1, 2)]
    assert (jan2.orders, jan2.revenue, jan2.units) == (4, Decimal("22.98"), 7)
    assert jan2.avg_order_value == Decimal("5.75")  # 22.98 / 4 = 5.745: half-up, not half-even
    assert (jan2.distinct_customers, jan2.cancelled, jan2.refunded) == (3, 1, 1)
    jan3 = kpis[date(2025, 1, 3)]
    assert (jan3.orders, jan3.revenue, jan3.units, jan3.distinct_customers) == (0, Decimal("0.00"), 0, 0)
    assert (jan3.avg_order_value, jan3.cancelled, jan3.refunded) == (Decimal("0.00"), 0, 0)
    jan5 = kpis[date(2025, 1, 5)]  # nulls count as 0 but the order still counts
    assert (jan5.orders, jan5.revenue, jan5.units, jan5.distinct_customers) == (1, Decimal("0.00"), 0, 0)
    assert jan5.avg_order_value == Decimal("0.00")
