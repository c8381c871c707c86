"""Bronze → silver transforms: pure DataFrame → DataFrame functions, parameters passed in.

No I/O here and no Python UDFs: every rule is a Spark column expression, so the JVM runs it.

Rules every dataset shares: text is trimmed (spaces, tabs, CR, LF) and an empty field is null; timestamps
are ISO 8601 (``YYYY-MM-DD[T ]HH:MM[:SS[.f]]``, optional ``Z``/``±HH:MM``, none means UTC) and at most
``future_skew_seconds`` after ``now``; a record whose field count differs from the header's is
``malformed_row``; a key over 256 characters or another field over 4,096 is ``field_too_long``. A row
lists every reason code that applies; a row with none is valid.

Customers: ``email`` is lower-cased and must look like an address (one ``@``, a non-empty local part, a
dot inside the domain, no whitespace); ``state`` and ``country`` are codes, upper-cased; ``is_active``
reads true/false/t/f/yes/no/y/n/1/0 in any case; ``customer_name`` and ``city`` keep their case.
Products: ``product_name`` and ``category`` keep their case; ``created_at`` is optional.

Deduplication among valid rows, the last occurrence in the file winning (exact copies included):
sales keep one row per ``transaction_id`` (a re-sent transaction replaces the earlier one); customers
and products keep one row per (business key, ``updated_at`` instant), so several ``updated_at`` of one
key all stay, as the versions the warehouse's SCD2 load orders.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
# A plausible address, checked as a set-based pattern rather than RFC 5322: one @, a non-empty local
# part, a dot inside the domain, no whitespace.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s.][^@\s]*\.[^@\s]*[^@\s.]$"
TRUE_TEXTS = ("true", "t", "yes", "y", "1")
FALSE_TEXTS = ("false", "f", "no", "n", "0")


@dataclass(frozen=True)
class CleaningRules:
    """Parameters of the cleaning rules (``total_tolerance`` is the sales total's)."""

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


def _timestamp(text: Column) -> Column:
    """ISO 8601 text as an instant; null when it is not one (offset-less text is UTC: the session's zone)."""
    return F.when(
        text.rlike(TIMESTAMP_PATTERN), F.regexp_replace(text, MINUTES_WITH_ZONE, "$1:00$2").try_cast("timestamp")
    )


def _timestamp_reasons(name: str, *, required: bool) -> list[Column]:
    """missing_/invalid_<name> for a column typed by :func:`_timestamp` beside its text ``_<name>_text``."""
    text = F.col(f"_{name}_text")
    invalid = _reason(text.isNotNull() & F.col(name).isNull(), f"invalid_{name}")
    return [_reason(text.isNull(), f"missing_{name}"), invalid] if required else [invalid]


def _horizon(rules: CleaningRules) -> Column:
    """The latest instant a timestamp may hold: ``now`` plus the clock skew allowed between systems."""
    return F.lit(rules.now).cast("timestamp") + F.make_interval(secs=F.lit(rules.future_skew_seconds))


def _with_reasons(raw: DataFrame, dataset: Dataset, columns: Sequence[Column], reasons: Sequence[Column]) -> DataFrame:
    """source_line, the original text, the typed ``columns`` and the ``reasons`` array of every broken rule.

    ``columns`` may hold helpers (names starting with ``_``) that ``reasons`` read; they are dropped after.
    The rules every dataset shares (malformed_row, field_too_long) come first.
    """
    contract_columns = CONTRACTS[dataset].column_names
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
        *columns,
    )
    shared = [_reason(F.col("_malformed"), "malformed_row"), _reason(F.col("_too_long"), "field_too_long")]
    helpers = [name for name in typed.columns if name.startswith("_")]
    return typed.withColumn(REASONS, F.array_compact(F.array(*shared, *reasons))).drop(*helpers)


def type_sales(raw: DataFrame, rules: CleaningRules) -> DataFrame:
    """Type every sales row and list the reasons it is invalid (an empty list: valid)."""
    ts_text, qty_text = _clean_text("transaction_ts"), _clean_text("quantity")
    price_text, total_text = _clean_text("unit_price"), _clean_text("total_amount")
    qty = F.when(qty_text.rlike(INTEGER_PATTERN), qty_text.try_cast("int"))
    price_wide = F.when(price_text.rlike(DECIMAL_PATTERN), price_text.try_cast(WIDE_DECIMAL))
    total_wide = F.when(total_text.rlike(DECIMAL_PATTERN), total_text.try_cast(WIDE_DECIMAL))
    # try_cast: an amount too large for numeric(12,2) rejects its row instead of failing the batch.
    price, total = price_wide.try_cast(MONEY), total_wide.try_cast(MONEY)
    derived_total = (qty * price).try_cast(MONEY)
    columns = [
        _clean_text("transaction_id").alias("transaction_id"),
        _timestamp(ts_text).alias("transaction_ts"),
        _clean_text("customer_id").alias("customer_id"),
        _clean_text("product_id").alias("product_id"),
        qty.alias("quantity"),
        price.alias("unit_price"),
        F.coalesce(total, derived_total).alias("total_amount"),
        F.lower(_clean_text("payment_method")).alias("payment_method"),
        F.lower(_clean_text("status")).alias("status"),
        ts_text.alias("_transaction_ts_text"),
        qty_text.alias("_qty_text"),
        price_text.alias("_price_text"),
        total_text.alias("_total_text"),
        price_wide.alias("_price_wide"),
        total.alias("_total_given"),
        (qty.isNotNull() & price.isNotNull() & derived_total.isNull()).alias("_total_overflow"),
    ]
    c = F.col
    reasons = [
        _reason(c("transaction_id").isNull(), "missing_transaction_id"),
        *_timestamp_reasons("transaction_ts", required=True),
        _reason(c("transaction_ts") > _horizon(rules), "future_timestamp"),
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
    ]
    return _with_reasons(raw, Dataset.sales, columns, reasons)


def _timestamp_columns(name: str) -> list[Column]:
    """A timestamp column typed, and its trimmed text as the helper :func:`_timestamp_reasons` reads."""
    text = _clean_text(name)
    return [_timestamp(text).alias(name), text.alias(f"_{name}_text")]


def _future(rules: CleaningRules, *names: str) -> Column:
    """future_timestamp once, however many of the row's timestamps lie beyond the horizon."""
    horizon = _horizon(rules)
    return _reason(F.exists(F.array(*[F.col(n) > horizon for n in names]), lambda late: late), "future_timestamp")


def type_customers(raw: DataFrame, rules: CleaningRules) -> DataFrame:
    """Type every customers row and list the reasons it is invalid (an empty list: valid)."""
    active_text = F.lower(_clean_text("is_active"))
    is_active = F.when(active_text.isin(*TRUE_TEXTS), F.lit(True)).when(active_text.isin(*FALSE_TEXTS), F.lit(False))
    columns = [
        _clean_text("customer_id").alias("customer_id"),
        _clean_text("customer_name").alias("customer_name"),
        F.lower(_clean_text("email")).alias("email"),
        _clean_text("city").alias("city"),
        F.upper(_clean_text("state")).alias("state"),
        F.upper(_clean_text("country")).alias("country"),
        is_active.alias("is_active"),
        *_timestamp_columns("updated_at"),
        active_text.alias("_is_active_text"),
    ]
    c = F.col
    reasons = [
        _reason(c("customer_id").isNull(), "missing_customer_id"),
        *_timestamp_reasons("updated_at", required=True),
        _future(rules, "updated_at"),
        _reason(c("email").isNotNull() & ~c("email").rlike(EMAIL_PATTERN), "invalid_email"),
        _reason(c("_is_active_text").isNotNull() & c("is_active").isNull(), "invalid_is_active"),
    ]
    return _with_reasons(raw, Dataset.customers, columns, reasons)


def type_products(raw: DataFrame, rules: CleaningRules) -> DataFrame:
    """Type every products row and list the reasons it is invalid (an empty list: valid)."""
    columns = [
        _clean_text("product_id").alias("product_id"),
        _clean_text("product_name").alias("product_name"),
        _clean_text("category").alias("category"),
        *_timestamp_columns("created_at"),
        *_timestamp_columns("updated_at"),
    ]
    reasons = [
        _reason(F.col("product_id").isNull(), "missing_product_id"),
        *_timestamp_reasons("updated_at", required=True),
        *_timestamp_reasons("created_at", required=False),
        _future(rules, "updated_at", "created_at"),
    ]
    return _with_reasons(raw, Dataset.products, columns, reasons)


def deduplicate_latest(valid: DataFrame, key: tuple[str, ...], columns: tuple[str, ...]) -> DataFrame:
    """One row per value of the ``key`` columns: the last occurrence in the file wins (re-sent records replace)."""
    latest = valid.groupBy(*key).agg(F.max_by(F.struct(*[F.col(c) for c in columns]), F.col(SOURCE_LINE)).alias("_r"))
    return latest.select(*[F.col(f"_r.{c}").alias(c) for c in columns])


def valid_rows(typed: DataFrame) -> DataFrame:
    return typed.where(F.size(F.col(REASONS)) == 0)


def rejected_rows(typed: DataFrame) -> DataFrame:
    """Rejects with the original text of the line and every reason code that applies."""
    return typed.where(F.size(F.col(REASONS)) > 0).select(
        F.col(SOURCE_LINE), F.col(REASONS), F.to_json(F.col(ORIGINAL)).alias("record")
    )


@dataclass(frozen=True)
class Cleaning:
    """How one dataset's rows are typed and which columns identify a record within a batch."""

    dataset: Dataset
    type_rows: Callable[[DataFrame, CleaningRules], DataFrame]
    dedupe_key: tuple[str, ...]

    @property
    def staging_columns(self) -> tuple[str, ...]:
        """The staged row: its file line and the contract's columns, typed (``staging.<dataset>``'s order)."""
        return (SOURCE_LINE, *CONTRACTS[self.dataset].column_names)


CLEANING: dict[Dataset, Cleaning] = {
    Dataset.sales: Cleaning(Dataset.sales, type_sales, ("transaction_id",)),
    Dataset.customers: Cleaning(Dataset.customers, type_customers, ("customer_id", "updated_at")),
    Dataset.products: Cleaning(Dataset.products, type_products, ("product_id", "updated_at")),
}


def clean(raw: DataFrame, dataset: Dataset, rules: CleaningRules) -> tuple[DataFrame, DataFrame]:
    """(typed rows with their reasons, deduplicated valid rows) for a batch of ``dataset``."""
    cleaning = CLEANING[dataset]
    typed = cleaning.type_rows(raw, rules)
    staged = deduplicate_latest(valid_rows(typed), cleaning.dedupe_key, cleaning.staging_columns)
    return typed, staged
