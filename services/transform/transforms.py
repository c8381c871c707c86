"""Bronze → silver transforms: pure DataFrame → DataFrame functions, parameters passed in.

No I/O here and no Python UDFs: every rule is a Spark column expression, so the JVM runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, MapType, StructType

from shared.datasets import CONTRACTS, PAYMENT_METHODS, SALE_STATUSES, Dataset

SOURCE_LINE = "source_line"
REASONS = "reasons"
ORIGINAL = "original"
# Spark's column for a record it could not split into the header's fields (or parse as a JSON object).
CORRUPT_RECORD = "_corrupt_record"
MALFORMED = "malformed"
# Longer values are not data but damage (or an attack); keys are indexed, so they are held shorter.
MAX_KEY_CHARS = 256
MAX_TEXT_CHARS = 4096
KEY_COLUMNS = frozenset({"transaction_id", "customer_id", "product_id"})
# The header is line 1 of a CSV file; the first record is line 2.
FIRST_DATA_LINE = 2
# monotonically_increasing_id() puts the partition index above bit 33 and the row index below it.
PARTITION_SHIFT = 33

TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$"
INTEGER_PATTERN = r"^[+-]?\d+$"
DECIMAL_PATTERN = r"^[+-]?(\d+(\.\d*)?|\.\d+)$"
MONEY = "decimal(12,2)"
# Parsed at full precision first, so the one rounding to cents is half-up on the exact text
# ("12.3449999" → 12.34) and a negative price below a cent is still seen as negative.
WIDE_DECIMAL = "decimal(38,18)"
# Spark's cast wants seconds when a zone follows the minutes; ISO 8601 does not.
MINUTES_WITH_ZONE = r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2})(Z|[+-]\d{2}:\d{2})$"
WHITESPACE = " \t\r\n"


@dataclass(frozen=True)
class SalesRules:
    """Parameters of the sales cleaning rules."""

    now: datetime
    future_skew_seconds: int = 300
    total_tolerance: float = 0.01


def with_source_lines(df: DataFrame, *, first_line: int = FIRST_DATA_LINE) -> DataFrame:
    """Number rows by their position in the file, without moving them to one partition.

    The row's index inside its partition is recovered from monotonically_increasing_id(); each
    partition's offset is the row count of the partitions before it (one small aggregation).
    """
    tagged = df.withColumn("_mid", F.monotonically_increasing_id()).withColumn("_pid", F.spark_partition_id())
    counts = sorted(tagged.groupBy("_pid").count().collect(), key=lambda row: row["_pid"])
    offsets: dict[int, int] = {}
    running = 0
    for row in counts:
        offsets[row["_pid"]] = running
        running += row["count"]
    offset_expr: Column = F.lit(0)
    for pid, offset in offsets.items():
        offset_expr = F.when(F.col("_pid") == pid, F.lit(offset)).otherwise(offset_expr)
    index_in_partition = F.col("_mid") - F.shiftleft(F.col("_pid").cast("long"), PARTITION_SHIFT)
    return tagged.withColumn(SOURCE_LINE, (offset_expr + index_in_partition + F.lit(first_line)).cast("long")).drop(
        "_mid", "_pid"
    )


def as_text(df: DataFrame) -> DataFrame:
    """Every column as text, as a CSV file would hold it: nested values as JSON, timestamps in UTC."""
    columns = [
        (
            F.to_json(F.col(f"`{field.name}`"))
            if isinstance(field.dataType, StructType | ArrayType | MapType)
            else F.col(f"`{field.name}`").cast("string")
        ).alias(field.name)
        for field in df.schema.fields
    ]
    return df.select(*columns)


def record_start_lines(lines: DataFrame, *, quoted: bool, first_line: int) -> DataFrame:
    """(record, line): for a file read as text lines, the line each record starts on.

    ``record`` is the number a record gets by counting (``first_line`` for the first). A line starts a
    record unless it is blank or whitespace (the readers skip those) or, in CSV, continues a quoted field: an odd
    number of quotes before it means a field is still open.
    """
    numbered = with_source_lines(lines.select(F.col("value").alias("_text")), first_line=1).where(
        F.col(SOURCE_LINE) >= first_line
    )
    start = F.btrim(F.col("_text"), F.lit(WHITESPACE)) != ""
    if quoted:
        quotes = F.length("_text") - F.length(F.regexp_replace("_text", '"', ""))
        before = Window.orderBy(SOURCE_LINE).rowsBetween(Window.unboundedPreceding, -1)
        numbered = numbered.withColumn("_quotes_before", F.coalesce(F.sum(quotes).over(before), F.lit(0)))
        start = start & (F.col("_quotes_before") % 2 == 0)
    return numbered.where(start).select(
        (F.row_number().over(Window.orderBy(SOURCE_LINE)) + F.lit(first_line - 1)).alias("record"),
        F.col(SOURCE_LINE).alias("line"),
    )


def to_contract_text(df: DataFrame, dataset: Dataset) -> DataFrame:
    """The raw layer: the contract's columns as the text the file holds; a column the file lacks is null.

    NUL characters, which PostgreSQL text cannot hold, become U+FFFD, so the row stays traceable.
    """
    present = set(df.columns)
    malformed = F.col(CORRUPT_RECORD).isNotNull() if CORRUPT_RECORD in present else F.lit(False)
    columns = [
        F.regexp_replace(
            (F.col(f"`{name}`") if name in present else F.lit(None)).cast("string"), "\u0000", "\ufffd"
        ).alias(name)
        for name in CONTRACTS[dataset].column_names
    ]
    return df.select(F.col(SOURCE_LINE), *columns, malformed.alias(MALFORMED))


def _clean_text(name: str) -> Column:
    """Text without surrounding whitespace (tabs included); an empty field is null."""
    return F.nullif(F.btrim(F.col(name), F.lit(WHITESPACE)), F.lit(""))


def _reason(condition: Column, code: str) -> Column:
    return F.when(condition, F.lit(code))


def type_sales(raw: DataFrame, rules: SalesRules) -> DataFrame:
    """Type every sales row and list the reasons it is invalid (an empty list: valid)."""
    ts_text, qty_text = _clean_text("transaction_ts"), _clean_text("quantity")
    price_text, total_text = _clean_text("unit_price"), _clean_text("total_amount")
    ts_ok = ts_text.rlike(TIMESTAMP_PATTERN)
    ts = F.when(ts_ok, F.regexp_replace(ts_text, MINUTES_WITH_ZONE, "$1:00$2").try_cast("timestamp"))
    qty = F.when(qty_text.rlike(INTEGER_PATTERN), qty_text.try_cast("int"))
    price_wide = F.when(price_text.rlike(DECIMAL_PATTERN), price_text.try_cast(WIDE_DECIMAL))
    total_wide = F.when(total_text.rlike(DECIMAL_PATTERN), total_text.try_cast(WIDE_DECIMAL))
    # try_cast: an amount too large for numeric(12,2) rejects its row instead of failing the batch.
    price, total = price_wide.try_cast(MONEY), total_wide.try_cast(MONEY)
    derived_total = (qty * price).try_cast(MONEY)
    status = F.lower(_clean_text("status"))
    payment = F.lower(_clean_text("payment_method"))
    horizon = F.lit(rules.now).cast("timestamp") + F.make_interval(secs=F.lit(rules.future_skew_seconds))

    contract_columns = CONTRACTS[Dataset.sales].column_names
    original = F.struct(*[F.col(name) for name in contract_columns])
    too_long = F.exists(
        F.array(
            *[
                F.length(F.col(name)) > F.lit(MAX_KEY_CHARS if name in KEY_COLUMNS else MAX_TEXT_CHARS)
                for name in contract_columns
            ]
        ),
        lambda flag: flag,
    )
    malformed = F.col(MALFORMED) if MALFORMED in raw.columns else F.lit(False)
    typed = raw.select(
        F.col(SOURCE_LINE),
        original.alias(ORIGINAL),
        malformed.alias("_malformed"),
        too_long.alias("_too_long"),
        _clean_text("transaction_id").alias("transaction_id"),
        ts.alias("transaction_ts"),
        _clean_text("customer_id").alias("customer_id"),
        _clean_text("product_id").alias("product_id"),
        qty.alias("quantity"),
        price.alias("unit_price"),
        F.coalesce(total, derived_total).alias("total_amount"),
        payment.alias("payment_method"),
        status.alias("status"),
        ts_text.alias("_ts_text"),
        qty_text.alias("_qty_text"),
        price_text.alias("_price_text"),
        total_text.alias("_total_text"),
        price_wide.alias("_price_wide"),
        total.alias("_total_given"),
        (qty.isNotNull() & price.isNotNull() & derived_total.isNull()).alias("_total_overflow"),
    )
    c = F.col
    reasons = F.array_compact(
        F.array(
            _reason(c("_malformed"), "malformed_row"),
            _reason(c("_too_long"), "field_too_long"),
            _reason(c("transaction_id").isNull(), "missing_transaction_id"),
            _reason(c("_ts_text").isNull(), "missing_transaction_ts"),
            _reason(c("_ts_text").isNotNull() & c("transaction_ts").isNull(), "invalid_transaction_ts"),
            _reason(c("transaction_ts") > horizon, "future_timestamp"),
            _reason(c("_qty_text").isNotNull() & c("quantity").isNull(), "invalid_quantity"),
            _reason(c("quantity") <= 0, "non_positive_quantity"),
            _reason(c("_price_text").isNotNull() & c("unit_price").isNull(), "invalid_unit_price"),
            _reason(c("_price_wide") < 0, "negative_price"),
            _reason(
                (c("_total_text").isNotNull() & c("_total_given").isNull()) | c("_total_overflow"),
                "invalid_total_amount",
            ),
            _reason(
                F.abs(c("_total_given") - c("quantity") * c("unit_price")) > F.lit(rules.total_tolerance),
                "total_mismatch",
            ),
            _reason(c("status").isNotNull() & ~c("status").isin(*SALE_STATUSES), "invalid_status"),
            _reason(
                c("payment_method").isNotNull() & ~c("payment_method").isin(*PAYMENT_METHODS),
                "invalid_payment_method",
            ),
        )
    )
    return typed.withColumn(REASONS, reasons).drop(
        "_ts_text",
        "_qty_text",
        "_price_text",
        "_total_text",
        "_price_wide",
        "_total_given",
        "_total_overflow",
        "_malformed",
        "_too_long",
    )


SALES_STAGING_COLUMNS = (SOURCE_LINE, *CONTRACTS[Dataset.sales].column_names)


def deduplicate_latest(valid: DataFrame, key: str, columns: tuple[str, ...]) -> DataFrame:
    """One row per business key: the last occurrence in the file wins (re-sent records replace)."""
    latest = valid.groupBy(key).agg(F.max_by(F.struct(*[F.col(c) for c in columns]), F.col(SOURCE_LINE)).alias("_r"))
    return latest.select(*[F.col(f"_r.{c}").alias(c) for c in columns])


def valid_rows(typed: DataFrame) -> DataFrame:
    return typed.where(F.size(F.col(REASONS)) == 0)


def rejected_rows(typed: DataFrame) -> DataFrame:
    """Rejects with the original text of the line and every reason code that applies."""
    return typed.where(F.size(F.col(REASONS)) > 0).select(
        F.col(SOURCE_LINE), F.col(REASONS), F.to_json(F.col(ORIGINAL)).alias("record")
    )


def clean_sales(raw: DataFrame, rules: SalesRules) -> tuple[DataFrame, DataFrame]:
    """(typed rows with their reasons, deduplicated valid rows) for a sales batch."""
    typed = type_sales(raw, rules)
    staged = deduplicate_latest(valid_rows(typed), "transaction_id", SALES_STAGING_COLUMNS)
    return typed, staged
