"""Bronze → silver transforms of the customers and products datasets, and the Spark job that runs them.

Like the sales tests: inputs built in memory (or as small CSV / NDJSON files), the production functions run
on the session's one SparkSession, whole collected frames compared with the full expected rows; the job's
output is also checked against the pure-Python reference (tests/reference.py).
"""

from __future__ import annotations

import csv
import json
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import BooleanType, LongType, StringType, StructField, StructType

from devtools.sampledata import GeneratorConfig, write_customers, write_products
from services.transform import transforms as T
from services.transform.service import run_job
from shared.datasets import CONTRACTS, Dataset
from tests import reference as R
from tests.services.transform import views as V
from tests.services.transform.test_transforms import dirty_files, read_csv_parts, ts, utc

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
RULES = T.CleaningRules(now=NOW)
DIMENSIONS = (Dataset.customers, Dataset.products)
KEYS = {Dataset.customers: "customer_id", Dataset.products: "product_id"}
CLEAN: dict[Dataset, dict[str, str | None]] = {
    Dataset.customers: {
        "customer_id": "C",
        "customer_name": "Ana Silva",
        "email": "ana@example.com",
        "city": "Recife",
        "state": "PE",
        "country": "BR",
        "is_active": "true",
        "updated_at": "2024-05-01T10:00:00Z",
    },
    Dataset.products: {
        "product_id": "P",
        "product_name": "Eco Mug",
        "category": "home",
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-05-01T10:00:00Z",
    },
}
MAY1 = ts("2024-05-01T10:00:00+00:00")
JAN1 = ts("2024-01-01T00:00:00+00:00")


# --------------------------------------------------------------------------------------------- helpers


def columns(dataset: Dataset) -> tuple[str, ...]:
    return CONTRACTS[dataset].column_names


def line(dataset: Dataset, n: int, **fields: Any) -> dict[str, Any]:
    """A raw row on file line ``n``: a clean row (key ``<P|C><n>``) with ``fields`` replacing its values."""
    unknown = set(fields) - {*columns(dataset), T.MALFORMED}
    assert not unknown, unknown
    key = KEYS[dataset]
    return {T.SOURCE_LINE: n, T.MALFORMED: False, **CLEAN[dataset], key: f"{key[0].upper()}{n}", **fields}


def raw_frame(spark: SparkSession, dataset: Dataset, rows: Iterable[dict[str, Any]]) -> DataFrame:
    """Rows as :func:`T.to_contract_text` leaves them: source_line, every contract column as text, malformed."""
    schema = StructType(
        [
            StructField(T.SOURCE_LINE, LongType(), nullable=False),
            *[StructField(c, StringType()) for c in columns(dataset)],
            StructField(T.MALFORMED, BooleanType(), nullable=False),
        ]
    )
    return spark.createDataFrame([tuple(r[f.name] for f in schema.fields) for r in rows], schema)


def type_rows(spark: SparkSession, dataset: Dataset, rows: list[dict[str, Any]]) -> DataFrame:
    return V.type_rows(raw_frame(spark, dataset, rows), dataset, RULES)


def reasons_by_line(spark: SparkSession, dataset: Dataset, rows: list[dict[str, Any]]) -> dict[int, list[str]]:
    typed = type_rows(spark, dataset, rows)
    return {r[T.SOURCE_LINE]: list(r[T.REASONS]) for r in typed.select(T.SOURCE_LINE, T.REASONS).collect()}


def as_tuple(values: Iterable[Any]) -> tuple[Any, ...]:
    """A collected row with timestamps as UTC instants and arrays as lists."""
    return tuple(utc(v) if isinstance(v, datetime) else list(v) if isinstance(v, list) else v for v in values)


def typed_tuples(df: DataFrame, dataset: Dataset) -> list[tuple[Any, ...]]:
    """(source_line, typed contract columns..., reasons) sorted by source_line."""
    rows = df.select(T.SOURCE_LINE, *columns(dataset), T.REASONS).collect()
    return sorted((as_tuple(r) for r in rows), key=lambda t: t[0])


def staged_tuples(df: DataFrame, dataset: Dataset) -> list[tuple[Any, ...]]:
    rows = df.select(*T.CLEANING[dataset].staging_columns).collect()
    return sorted((as_tuple(r) for r in rows), key=lambda t: t[0])


# ------------------------------------------------------------------------------------- reason codes

LONG_KEY = "K" * (T.MAX_KEY_CHARS + 1)
LONG_TEXT = "x" * (T.MAX_TEXT_CHARS + 1)
Overrides = dict[str, Any]

# (dataset, code) -> (overrides breaking exactly that rule, overrides that come close and are still clean)
REASON_CASES: dict[tuple[Dataset, str], tuple[list[Overrides], list[Overrides]]] = {
    (Dataset.customers, "malformed_row"): ([{T.MALFORMED: True}], []),
    (Dataset.customers, "field_too_long"): (
        [
            {"customer_id": LONG_KEY},
            {"customer_name": LONG_TEXT},
            {"email": "a" * T.MAX_TEXT_CHARS + "@example.com"},
        ],
        [{"customer_id": "K" * T.MAX_KEY_CHARS}, {"city": "x" * T.MAX_TEXT_CHARS}],
    ),
    (Dataset.customers, "missing_customer_id"): (
        [{"customer_id": None}, {"customer_id": ""}, {"customer_id": "   "}, {"customer_id": "\t"}],
        [{"customer_id": " x "}],
    ),
    (Dataset.customers, "missing_updated_at"): (
        [{"updated_at": None}, {"updated_at": ""}, {"updated_at": " \t "}],
        [],
    ),
    (Dataset.customers, "invalid_updated_at"): (
        [
            {"updated_at": "yesterday"},
            {"updated_at": "2024-13-01T00:00:00Z"},
            {"updated_at": "2024-01-01"},
            {"updated_at": "2024-02-30T10:00:00Z"},
            {"updated_at": "01/05/2024 10:00"},
            # year 0 or 10000 in UTC, year 0 as written
            {"updated_at": "0001-01-01T00:00:00+14:00"},
            {"updated_at": "9999-12-31T23:59:59-1400"},
            {"updated_at": "0000-12-31T23:00:00-14:00"},
        ],
        [
            {"updated_at": "2024-01-01 10:00"},
            {"updated_at": "2024-02-29T23:59:59.999+01:00"},
            {"updated_at": "2024-05-01T10:00Z"},
            {"updated_at": "0001-01-01T14:00:00+14:00"},
        ],
    ),
    (Dataset.customers, "future_timestamp"): (
        [
            {"updated_at": "2024-06-01T12:10:00Z"},
            {"updated_at": "2024-06-01T12:05:00.000001Z"},
            {"updated_at": "2024-06-01T15:10:00+03:00"},
            {"updated_at": "2030-01-01T00:00:00Z"},
        ],
        [{"updated_at": "2024-06-01T12:05:00Z"}, {"updated_at": "2024-06-01T15:04+03:00"}],
    ),
    (Dataset.customers, "invalid_email"): (
        [
            {"email": "ana"},
            {"email": "ana@"},
            {"email": "@example.com"},
            {"email": "ana@example"},
            {"email": "ana@@example.com"},
            {"email": "ana@mail@example.com"},
            {"email": "ana maria@example.com"},
            {"email": "ana@exa\tmple.com"},
            {"email": "ana@.com"},
            {"email": "ana@example."},
        ],
        [
            {"email": " Ana@Example.COM\t"},
            {"email": None},
            {"email": ""},
            {"email": "a@b.c"},
            {"email": "first.last+tag@mail.example.com.br"},
        ],
    ),
    (Dataset.customers, "invalid_is_active"): (
        [
            {"is_active": "maybe"},
            {"is_active": "2"},
            {"is_active": "tru"},
            {"is_active": "yes!"},
            {"is_active": "-1"},
            {"is_active": "on"},
        ],
        [
            {"is_active": "TRUE"},
            {"is_active": " yes "},
            {"is_active": "Y"},
            {"is_active": "0"},
            {"is_active": "F"},
            {"is_active": "No"},
            {"is_active": None},
            {"is_active": ""},
        ],
    ),
    (Dataset.products, "malformed_row"): ([{T.MALFORMED: True}], []),
    (Dataset.products, "field_too_long"): (
        [{"product_id": LONG_KEY}, {"category": LONG_TEXT}],
        [{"product_id": "K" * T.MAX_KEY_CHARS}, {"product_name": "x" * T.MAX_TEXT_CHARS}],
    ),
    (Dataset.products, "missing_product_id"): (
        [{"product_id": None}, {"product_id": ""}, {"product_id": "  \t"}],
        [{"product_id": " x "}],
    ),
    (Dataset.products, "missing_updated_at"): (
        [{"updated_at": None}, {"updated_at": ""}, {"updated_at": "  "}],
        [],
    ),
    (Dataset.products, "invalid_updated_at"): (
        [
            {"updated_at": "not-a-date"},
            {"updated_at": "2024-05-01T25:00:00Z"},
            {"updated_at": "2024-05-01"},
            {"updated_at": "0001-01-01T10:00+14"},
            {"updated_at": "9999-12-31T23:00-03:00"},
        ],
        [
            {"updated_at": "0001-01-01 00:00:00"},
            {"updated_at": "2024-05-01 10:00:00"},
            {"updated_at": "2024-05-01T13:00+03:00"},
            {"updated_at": "2024-05-01T13:00:00+0300"},
            {"updated_at": "2024-05-01T07:00-03"},
        ],
    ),
    (Dataset.products, "invalid_created_at"): (
        [
            {"created_at": "not-a-date"},
            {"created_at": "2023-02-29T00:00:00Z"},
            {"created_at": "2023"},
            {"created_at": "0001-01-01T00:00:00+14:00"},
            {"created_at": "9999-12-31T23:59:59-14:00"},
        ],
        [
            {"created_at": None},
            {"created_at": ""},
            {"created_at": "2023-02-28 00:00"},
            {"created_at": "0001-01-01T00:00:00-01:00"},
        ],
    ),
    (Dataset.products, "future_timestamp"): (
        [
            {"updated_at": "2024-06-01T12:10:00Z"},
            {"created_at": "2030-01-01T00:00:00Z"},
            {"created_at": "2024-06-01T12:06:00Z", "updated_at": "2024-06-01T12:07:00Z"},
        ],
        [{"created_at": "2024-06-01T12:05:00Z", "updated_at": "2024-06-01T12:05:00Z"}],
    ),
}


@pytest.mark.parametrize(("dataset", "code"), list(REASON_CASES), ids=[f"{d.value}-{c}" for d, c in REASON_CASES])
def test_reason_code(spark: SparkSession, dataset: Dataset, code: str) -> None:
    broken, close = REASON_CASES[(dataset, code)]
    rows = [line(dataset, 2)]
    expected: dict[int, list[str]] = {2: []}
    for overrides, reasons in [*[(o, [code]) for o in broken], *[(o, []) for o in close]]:
        n = len(rows) + 2
        rows.append(line(dataset, n, **overrides))
        expected[n] = reasons

    assert reasons_by_line(spark, dataset, rows) == expected


def test_every_reason_code_has_a_case() -> None:
    """Each dataset's cases cover the shared codes, its key, and each of its own rules."""
    codes = {dataset: {code for d, code in REASON_CASES if d is dataset} for dataset in DIMENSIONS}
    shared = {"malformed_row", "field_too_long", "missing_updated_at", "invalid_updated_at", "future_timestamp"}
    assert codes[Dataset.customers] == shared | {"missing_customer_id", "invalid_email", "invalid_is_active"}
    assert codes[Dataset.products] == shared | {"missing_product_id", "invalid_created_at"}


def test_customers_list_every_broken_rule(spark: SparkSession) -> None:
    c = Dataset.customers
    rows = [
        line(c, 2, customer_id=" ", updated_at="yesterday", email="nobody", is_active="maybe"),
        line(c, 3, customer_id=LONG_KEY, updated_at=None, email="a b@c.com", **{T.MALFORMED: True}),
        line(c, 4, updated_at="2030-01-01T00:00:00Z", is_active="2"),
        line(c, 5),
    ]
    assert reasons_by_line(spark, c, rows) == {
        2: ["missing_customer_id", "invalid_updated_at", "invalid_email", "invalid_is_active"],
        3: ["malformed_row", "field_too_long", "missing_updated_at", "invalid_email"],
        4: ["future_timestamp", "invalid_is_active"],
        5: [],
    }


def test_products_list_every_broken_rule(spark: SparkSession) -> None:
    p = Dataset.products
    rows = [
        line(p, 2, product_id=None, updated_at="2030-01-01T00:00:00Z", created_at="never"),
        line(p, 3, product_id="", updated_at=None, created_at="2030-01-01T00:00:00Z"),
        line(p, 4, category=LONG_TEXT, updated_at="bad", created_at="bad"),
        line(p, 5),
    ]
    assert reasons_by_line(spark, p, rows) == {
        2: ["missing_product_id", "invalid_created_at", "future_timestamp"],
        3: ["missing_product_id", "missing_updated_at", "future_timestamp"],
        4: ["field_too_long", "invalid_updated_at", "invalid_created_at"],
        5: [],
    }


# ------------------------------------------------------------------------------------- normalisation


def test_customers_are_normalised(spark: SparkSession) -> None:
    c = Dataset.customers
    rows = [
        # text trimmed (tabs too); email lower-cased; state and country upper-cased; names keep their case
        line(
            c,
            2,
            customer_id="\t C2 ",
            customer_name="  Ana  de Souza\t",
            email=" Ana.Souza@Example.COM ",
            city=" São Paulo ",
            state=" sp",
            country="br\t",
            is_active=" TRUE ",
        ),
        # an empty or blank optional field is null
        line(c, 3, customer_name="", email=" ", city="\t", state="", country=" ", is_active=""),
        # is_active in its other spellings
        *[line(c, n, is_active=text) for n, text in [(4, "F"), (5, "yes"), (6, "n"), (7, "1"), (8, "0")]],
        # timestamps: an offset is converted to the UTC instant, none means UTC, minutes with a zone read
        line(c, 9, updated_at="2024-05-01T13:00:00+03:00"),
        line(c, 10, updated_at="2024-05-01 10:00"),
        line(c, 11, updated_at="2024-05-01T05:00-05:00"),
        line(c, 12, updated_at="2023-12-31T23:59:59.123456Z"),
        line(c, 13, updated_at="\t2024-05-01T10:00:00 "),
    ]
    typed = V.type_rows(raw_frame(spark, c, rows), c, RULES)
    clean = ("Ana Silva", "ana@example.com", "Recife", "PE", "BR")
    assert typed_tuples(typed, c) == [
        (2, "C2", "Ana  de Souza", "ana.souza@example.com", "São Paulo", "SP", "BR", True, MAY1, []),
        (3, "C3", None, None, None, None, None, None, MAY1, []),
        (4, "C4", *clean, False, MAY1, []),
        (5, "C5", *clean, True, MAY1, []),
        (6, "C6", *clean, False, MAY1, []),
        (7, "C7", *clean, True, MAY1, []),
        (8, "C8", *clean, False, MAY1, []),
        (9, "C9", *clean, True, MAY1, []),
        (10, "C10", *clean, True, MAY1, []),
        (11, "C11", *clean, True, MAY1, []),
        (12, "C12", *clean, True, ts("2023-12-31T23:59:59.123456+00:00"), []),
        (13, "C13", *clean, True, MAY1, []),
    ]


def test_products_are_normalised(spark: SparkSession) -> None:
    p = Dataset.products
    rows = [
        # text trimmed (tabs too); name and category keep their case
        line(p, 2, product_id=" P2\t", product_name="\tEco  Mug, Ceramic ", category=" Home "),
        # blank optional fields are null, created_at among them
        line(p, 3, product_name=" ", category="", created_at="\t"),
        line(p, 4, created_at="2023-12-31T21:00:00-03:00", updated_at="2024-05-01T12:00+02:00"),
        line(p, 5, created_at="2024-01-01 00:00", updated_at="2024-05-01 10:00:00.000"),
    ]
    typed = V.type_rows(raw_frame(spark, p, rows), p, RULES)
    assert typed_tuples(typed, p) == [
        (2, "P2", "Eco  Mug, Ceramic", "Home", JAN1, MAY1, []),
        (3, "P3", None, None, None, MAY1, []),
        (4, "P4", "Eco Mug", "home", JAN1, MAY1, []),
        (5, "P5", "Eco Mug", "home", JAN1, MAY1, []),
    ]


@pytest.mark.parametrize("dataset", DIMENSIONS)
def test_rejected_rows_keep_the_original_text_and_reasons(spark: SparkSession, dataset: Dataset) -> None:
    key = KEYS[dataset]
    untrimmed = {**CLEAN[dataset], key: "  K3 ", "updated_at": ' soon "now", \\ é '}
    rows = [line(dataset, 2), line(dataset, 3, **untrimmed)]
    rejected = V.rejected_rows(type_rows(spark, dataset, rows))

    assert rejected.columns == [T.SOURCE_LINE, T.REASONS, "record"]
    (got,) = rejected.collect()
    assert (got[T.SOURCE_LINE], list(got[T.REASONS])) == (3, ["invalid_updated_at"])
    record = json.loads(got["record"])
    assert {name: record.get(name) for name in columns(dataset)} == untrimmed


# ----------------------------------------------------------------------------------- deduplication


def test_customers_keep_one_row_per_key_and_updated_at(spark: SparkSession) -> None:
    c = Dataset.customers
    rows = [
        line(c, 2, customer_id="C1", city="Recife"),
        # the same instant written in another zone: a re-send of line 2, which it replaces
        line(c, 3, customer_id="C1", city="Olinda", updated_at="2024-05-01T07:00:00-03:00"),
        # another updated_at of C1: a second version, kept
        line(c, 4, customer_id="C1", city="Natal", state="RN", updated_at="2024-05-02T10:00:00Z"),
        line(c, 5, customer_id="C2"),
        line(c, 6, customer_id="C2"),  # exact duplicate of line 5: the later line stands
        line(c, 7, customer_id="C2", email="broken"),  # invalid: does not replace line 6
        line(c, 8, customer_id="C3", is_active="maybe"),  # only occurrence invalid: no staged row
    ]
    typed, staged = V.clean(raw_frame(spark, c, rows).repartition(3), c, RULES)

    assert staged.columns == list(T.CLEANING[c].staging_columns)
    tail = ("ana@example.com",)
    assert staged_tuples(staged, c) == [
        (3, "C1", "Ana Silva", *tail, "Olinda", "PE", "BR", True, MAY1),
        (4, "C1", "Ana Silva", *tail, "Natal", "RN", "BR", True, ts("2024-05-02T10:00:00+00:00")),
        (6, "C2", "Ana Silva", *tail, "Recife", "PE", "BR", True, MAY1),
    ]
    assert sorted((r[T.SOURCE_LINE], list(r[T.REASONS])) for r in typed.collect()) == [
        *[(n, []) for n in range(2, 7)],
        (7, ["invalid_email"]),
        (8, ["invalid_is_active"]),
    ]


def test_products_keep_one_row_per_key_and_updated_at(spark: SparkSession) -> None:
    p = Dataset.products
    rows = [
        line(p, 2, product_id="P1", product_name="Old"),
        line(p, 3, product_id="P2"),
        line(p, 4, product_id="P1", product_name="New"),  # same key and updated_at: the last line wins
        line(p, 5, product_id="P1", product_name="Newer", updated_at="2024-05-03T00:00:00Z"),  # a version
        line(p, 6, product_id="P2", updated_at="2024-04-01T00:00:00Z"),  # an earlier version, later in the file
        line(p, 7, product_id="P2", updated_at="never"),
    ]
    _, staged = V.clean(raw_frame(spark, p, rows).repartition(2), p, RULES)
    assert staged_tuples(staged, p) == [
        (3, "P2", "Eco Mug", "home", JAN1, MAY1),
        (4, "P1", "New", "home", JAN1, MAY1),
        (5, "P1", "Newer", "home", JAN1, ts("2024-05-03T00:00:00+00:00")),
        (6, "P2", "Eco Mug", "home", JAN1, ts("2024-04-01T00:00:00+00:00")),
    ]


def test_deduplicate_latest_takes_a_composite_key(spark: SparkSession) -> None:
    df = spark.createDataFrame(
        [(4, "A", 1, "a1-4"), (2, "A", 1, "a1-2"), (3, "A", 2, "a2"), (5, "B", 1, "b1-5"), (6, "B", 1, "b1-6")],
        "source_line long, id string, version int, payload string",
    )
    columns_ = (T.SOURCE_LINE, "id", "version", "payload")
    got = T.deduplicate_latest(df, ("id", "version"), columns_)
    assert sorted(tuple(r) for r in got.collect()) == [(3, "A", 2, "a2"), (4, "A", 1, "a1-4"), (6, "B", 1, "b1-6")]


# ------------------------------------------------------------------------------- run_job on a file


def write_csv(path: Path, dataset: Dataset, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns(dataset)), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def json_value(name: str, text: str) -> Any:
    """is_active as JSON booleans where the text is one, as a JSON producer would write it."""
    if name == "is_active" and text in ("true", "false"):
        return text == "true"
    return text


def write_ndjson(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            # an empty field is left out, as JSON producers do with a missing value
            handle.write(json.dumps({k: json_value(k, v) for k, v in row.items() if v != ""}) + "\n")
    return path


def check_job_against_reference(
    spark: SparkSession, dataset: Dataset, rows: list[dict[str, str]], workdir: Path, *, file_format: str = "csv"
) -> tuple[int, int, int, int]:
    """Run the job on ``rows`` written as ``file_format`` and compare every output with the reference's
    reading of the same rows as CSV; returns the counts."""
    reference_csv = write_csv(workdir / f"{dataset.value}.csv", dataset, rows)
    # NDJSON has no header line: its records start on line 1, one line earlier than in the CSV.
    shift = 0 if file_format == "csv" else 1
    source = reference_csv if file_format == "csv" else write_ndjson(workdir / f"{dataset.value}.ndjson", rows)
    out = workdir / "out"
    batch_id = uuid.uuid4()

    output = run_job(
        spark, dataset=dataset, batch_id=batch_id, source=source, out=out, now=NOW, file_format=file_format
    )

    c = output.counts
    counts = (c.rows_in, c.rows_valid, c.rows_rejected, c.rows_duplicate)
    assert c.rows_in == len(rows) == c.rows_valid + c.rows_rejected + c.rows_duplicate
    assert counts == R.count_dimension_rows(reference_csv, dataset.value, now=NOW)

    raw, staged, rejects = (read_csv_parts(d) for d in (output.raw_csv, output.staged_csv, output.rejects_csv))
    assert (len(raw), len(staged), len(rejects)) == (c.rows_in, c.rows_valid, c.rows_rejected)
    assert {r[0] for r in raw + staged + rejects} <= {str(batch_id)}
    assert sorted(int(r[1]) for r in raw) == [n - shift for n in range(2, len(rows) + 2)]

    expected = R.load_valid_dimension(reference_csv, dataset.value, now=NOW)
    parquet = staged_tuples(spark.read.parquet(str(output.parquet)), dataset)
    assert Counter((t[1], t[-1]) for t in parquet) == Counter(dict.fromkeys(expected, 1))
    assert parquet == sorted(((r.line - shift, *r.values) for r in expected.values()), key=lambda t: t[0])

    parse = R.DIMENSION_PARSERS[dataset.value]
    rejected_lines = {n - shift for n, row in enumerate(rows, start=2) if parse({**row}, n, NOW) is None}
    assert sorted(int(r[1]) for r in rejects) == sorted(rejected_lines)
    return counts


def text_row(dataset: Dataset, **fields: str) -> dict[str, str]:
    return {name: "" if value is None else value for name, value in {**CLEAN[dataset], **fields}.items()}


SMALL_FILES: dict[Dataset, list[dict[str, str]]] = {
    Dataset.customers: [
        text_row(Dataset.customers, customer_id="C1"),
        text_row(Dataset.customers, customer_id="C2", is_active="false", email=" Bia@Example.com "),
        text_row(Dataset.customers, customer_id="C1", city="Olinda"),  # replaces line 2
        text_row(Dataset.customers, customer_id="C1", city="Natal", updated_at="2024-05-02T10:00:00Z"),  # version
        text_row(Dataset.customers, customer_id="C2", is_active="false", email=" Bia@Example.com "),  # duplicate
        text_row(Dataset.customers, customer_id="", email="x"),
        text_row(Dataset.customers, customer_id="C3", is_active="maybe"),
        text_row(Dataset.customers, customer_id="C4", updated_at="2030-01-01T00:00:00Z"),
        text_row(Dataset.customers, customer_id="C5", state="", country="", is_active="", updated_at="2024-05-01"),
    ],
    Dataset.products: [
        text_row(Dataset.products, product_id="P1"),
        text_row(Dataset.products, product_id="P1", product_name="Eco Mug 2"),  # replaces line 2
        text_row(Dataset.products, product_id="P1", updated_at="2024-05-03T00:00:00+01:00"),  # version
        text_row(Dataset.products, product_id="P2", created_at=""),
        text_row(Dataset.products, product_id="P2", created_at=""),  # duplicate
        text_row(Dataset.products, product_id="P3", created_at="someday"),
        text_row(Dataset.products, product_id="", updated_at=""),
    ],
}
# (rows_in, rows_valid, rows_rejected, rows_duplicate)
SMALL_COUNTS = {Dataset.customers: (9, 3, 4, 2), Dataset.products: (7, 3, 2, 2)}


@pytest.mark.parametrize("file_format", ["csv", "ndjson"])
@pytest.mark.parametrize("dataset", DIMENSIONS)
def test_run_job_stages_a_small_file(spark: SparkSession, tmp_path: Path, dataset: Dataset, file_format: str) -> None:
    counts = check_job_against_reference(spark, dataset, SMALL_FILES[dataset], tmp_path, file_format=file_format)
    assert counts == SMALL_COUNTS[dataset]


@pytest.mark.parametrize("dataset", DIMENSIONS)
def test_run_job_stages_a_generated_dirty_file(spark: SparkSession, tmp_path: Path, dataset: Dataset) -> None:
    """Sample data with every kind of dirt: duplicates, later versions and invalid rows."""
    # sample data from before NOW, so no row is rejected for being in the future
    config = GeneratorConfig(
        seed=5, customers=300, products=120, dimension_dirty_rate=0.3, start=date(2024, 1, 1), days=30
    )
    write = write_customers if dataset is Dataset.customers else write_products
    path = write(config, tmp_path / "generated.csv")
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows_in, valid, rejected, duplicate = check_job_against_reference(spark, dataset, rows, tmp_path)
    entities = config.customers if dataset is Dataset.customers else config.products
    dirty = round(entities * config.dimension_dirty_rate)
    # the dirt cycles duplicate, version, invalid
    assert (rows_in, valid, rejected, duplicate) == (
        entities + dirty,
        entities + len(range(1, dirty, 3)),
        len(range(2, dirty, 3)),
        len(range(0, dirty, 3)),
    )


# --------------------------------------------------------------------- a property over dirty files

# Valid instants, few enough that (key, updated_at) pairs repeat, often in another spelling; one early in year 1,
# close to the first instant accepted (PySpark collects nothing within a day of it: see test_transforms.YEAR_ONE).
INSTANTS = [
    datetime(2024, 1, 1, 10, 0, tzinfo=UTC),
    datetime(2024, 3, 1, tzinfo=UTC),
    NOW,
    datetime(1, 1, 2, 12, tzinfo=UTC),
]


def spellings(instant: datetime) -> st.SearchStrategy[str]:
    # isoformat, not strftime: %Y does not pad a year below 1000 to four digits
    utc_text = instant.replace(tzinfo=None).isoformat(timespec="seconds")
    west = instant.astimezone(timezone(timedelta(hours=-3))).replace(tzinfo=None).isoformat(timespec="seconds")
    return st.sampled_from([f"{utc_text}Z", utc_text, utc_text.replace("T", " "), f"{utc_text[:16]}Z", f"{west}-03:00"])


def padded(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(st.sampled_from(["", " ", "\t"]), values, st.sampled_from(["", " "])).map("".join)


@st.composite
def valid_customer_rows(draw: st.DrawFn) -> dict[str, str]:
    """Keys and instants from small pools, so versions and re-sends of a (key, updated_at) occur."""
    instant = draw(st.sampled_from(INSTANTS))
    return {
        "customer_id": draw(padded(st.sampled_from(["C1", "C2", "C3"]))),
        "customer_name": draw(st.sampled_from(["Ana", " João Silva ", ""])),
        "email": draw(padded(st.sampled_from(["ana@example.com", "Ana@Example.COM", "b@mail.example.com.br", ""]))),
        "city": draw(st.sampled_from(["Recife", " São Paulo", ""])),
        "state": draw(padded(st.sampled_from(["pe", "SP", "Rj", ""]))),
        "country": draw(padded(st.sampled_from(["br", "BR", "us", ""]))),
        "is_active": draw(padded(st.sampled_from(["true", "FALSE", "Yes", "n", "1", "0", "T", ""]))),
        "updated_at": draw(padded(spellings(instant))),
    }


BAD_CUSTOMER_VALUES: dict[str, list[str]] = {
    "customer_id": ["", "  "],
    "email": ["ana", "ana@example", "a b@c.com", "ana@@example.com"],
    "is_active": ["maybe", "2"],
    "updated_at": [
        "",
        "yesterday",
        "2024-02-30T00:00:00Z",
        "2024-06-02T00:00:00Z",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
    ],
}


# No shrink phase: with Spark each example costs about a second and shrinking can take minutes.
@settings(max_examples=20, deadline=None, database=None, phases=[Phase.explicit, Phase.generate])
@given(rows=dirty_files(valid_customer_rows(), BAD_CUSTOMER_VALUES))
@example(rows=[])  # a header-only file
def test_run_job_on_dirty_customers_conserves_rows(spark: SparkSession, rows: list[dict[str, str]]) -> None:
    """rows_in = valid + rejected + duplicate, and each valid (customer_id, updated_at) is staged once,
    as the last valid occurrence of it in the file."""
    with tempfile.TemporaryDirectory() as workdir:
        check_job_against_reference(spark, Dataset.customers, rows, Path(workdir))
