"""Bronze → silver transforms: pure DataFrame → DataFrame functions, parameters passed in.

No I/O here and no Python UDFs: every rule is a Spark column expression, so the JVM runs it.

Rules every dataset shares: text is trimmed (spaces, tabs, CR, LF) and an empty field is null; timestamps
are ISO 8601 (``YYYY-MM-DD[T ]HH:MM[:SS[.f]]``, optional ``Z``/``±HH:MM``/``±HHMM``/``±HH``, none means
UTC), in years 1 to 9999 both as written and in UTC, and at most ``future_skew_seconds`` after ``now``; a
record whose field count differs from the header's is ``malformed_row``; a key over 256 characters or another
field over 4,096 is ``field_too_long``. A row lists every reason code that applies; a row with none is valid.

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

import functools
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, MapType, StructType

from shared.datasets import CONTRACTS, PAYMENT_METHODS, SALE_STATUSES, Dataset

SOURCE_LINE = "source_line"
REASONS = "reasons"
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

# (?!0000): year 0 as written is outside the accepted range (see EARLIEST_MICROS), though Spark reads it.
TIMESTAMP_PATTERN = r"^(?!0000)\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$"
INTEGER_PATTERN = r"^[+-]?\d+$"
DECIMAL_PATTERN = r"^[+-]?(\d+(\.\d*)?|\.\d+)$"
MONEY = "decimal(12,2)"
# Parsed at full precision first, so the one rounding to cents is half-up on the exact text
# ("12.3449999" → 12.34) and a negative price below a cent is still seen as negative.
WIDE_DECIMAL = "decimal(38,18)"
# Spark's cast wants seconds when a zone follows the minutes; ISO 8601 does not.
MINUTES_WITH_ZONE = r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2})(Z|[+-]\d{2}:\d{2})$"
# ISO 8601's other offsets, which Spark's cast does not read: ±HHMM (what strftime's %z and many exports
# write) and ±HH. Groups: date and minutes, seconds (with a fraction), offset hours, offset minutes.
COMPACT_OFFSET_PATTERN = r"^((?!0000)\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2})(:\d{2}(?:\.\d+)?)?([+-]\d{2})(\d{2})?$"
# The instants a timestamp may hold: years 1 to 9999 in UTC, the range of Python's datetime, which reads them
# back. Spark types wider (an offset can move 0001-01-01 into year 0), but PostgreSQL refuses year 0 as text,
# so such a row would fail its whole batch's COPY.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
EARLIEST_MICROS = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // _MICROSECOND
LATEST_MICROS = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // _MICROSECOND
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


POSITION_COLUMNS = ("_mid", "_pid")


def tag_positions(df: DataFrame) -> DataFrame:
    """Each row's place in the file as Spark reads it: its partition and an id rising inside the partition."""
    return df.withColumn("_mid", F.monotonically_increasing_id()).withColumn("_pid", F.spark_partition_id())


def partition_sizes(tagged: DataFrame) -> dict[int, int]:
    """Rows per partition of a frame from :func:`tag_positions` (one small aggregation; cache ``tagged``
    first, or the file is read once more)."""
    return {row["_pid"]: row["count"] for row in tagged.groupBy("_pid").count().collect()}


def number_lines(tagged: DataFrame, sizes: dict[int, int], *, first_line: int = FIRST_DATA_LINE) -> DataFrame:
    """Number rows by their position in the file, without moving them to one partition.

    The row's index inside its partition is recovered from monotonically_increasing_id(); each
    partition's offset is the row count of the partitions before it. The offsets are joined in from a
    small frame rather than written into the expression: as literals they would make every file's code
    new to the JVM (see :func:`_with_horizon`).
    """
    offsets, running = [], 0
    for pid in sorted(sizes):
        offsets.append((pid, running))
        running += sizes[pid]
    frame = tagged.sparkSession.createDataFrame(offsets, "_pid int, _offset long")
    index_in_partition = F.col("_mid") - F.shiftleft(F.col("_pid").cast("long"), PARTITION_SHIFT)
    line = F.col("_offset") + index_in_partition + F.lit(first_line)
    return tagged.join(F.broadcast(frame), "_pid").select(
        line.alias(SOURCE_LINE),
        *[F.col(f"`{c}`") for c in tagged.columns if c not in POSITION_COLUMNS and c != SOURCE_LINE],
    )


def with_source_lines(df: DataFrame, *, first_line: int = FIRST_DATA_LINE) -> DataFrame:
    """:func:`number_lines` in one call, for a frame read once more to count its partitions."""
    tagged = tag_positions(df)
    return number_lines(tagged, partition_sizes(tagged), first_line=first_line)


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
    The row's position (source_line, or the columns of :func:`tag_positions`) comes along.

    NUL characters, which PostgreSQL text cannot hold, become U+FFFD, so the row stays traceable.
    """
    present = set(df.columns)
    malformed = F.col(CORRUPT_RECORD).isNotNull() if CORRUPT_RECORD in present else F.lit(False)
    columns = [
        F.replace(
            (F.col(f"`{name}`") if name in present else F.lit(None)).cast("string"), F.lit("\u0000"), F.lit("\ufffd")
        ).alias(name)
        for name in CONTRACTS[dataset].column_names
    ]
    positions = [F.col(c) for c in (SOURCE_LINE, *POSITION_COLUMNS) if c in present]
    return df.select(*positions, *columns, malformed.alias(MALFORMED))


def _clean_text(name: str) -> Column:
    """Text without surrounding whitespace (tabs included); an empty field is null."""
    return F.nullif(F.btrim(F.col(name), F.lit(WHITESPACE)), F.lit(""))


def _text(name: str) -> Column:
    """A contract column's cleaned text (:func:`_clean_text`), as the first step of every typing computes it."""
    return F.col(f"_clean_{name}")


@dataclass(frozen=True)
class Rule:
    """A reason code and the condition under which a row earns it (null counts as not)."""

    condition: Column
    code: str


def _reason(condition: Column, code: str) -> Rule:
    return Rule(condition, code)


def _timestamp(text: Column) -> Column:
    """ISO 8601 text as an instant; null when it is not one (offset-less text is UTC: the session's zone).
    The instant may lie outside the accepted range: :func:`_within_range` checks it, a step later."""
    # Only a text of 17 or 22 characters can be minutes with a zone ("…T10:00Z", "…T10:00+02:00"): the
    # length test spares every other row a regular expression.
    short = (F.length(text) == 17) | (F.length(text) == 22)
    with_seconds = F.when(short, F.regexp_replace(text, MINUTES_WITH_ZONE, "$1:00$2")).otherwise(text)
    return F.when(text.rlike(TIMESTAMP_PATTERN), with_seconds.try_cast("timestamp")).when(
        text.rlike(COMPACT_OFFSET_PATTERN), _with_extended_offset(text).try_cast("timestamp")
    )


def _with_extended_offset(text: Column) -> Column:
    """A timestamp with a ±HHMM or ±HH offset (:data:`COMPACT_OFFSET_PATTERN`) rewritten with seconds and
    ±HH:MM, the form Spark's cast reads. Only rows the common pattern refuses get this far."""

    def part(group: int) -> Column:
        return F.nullif(F.regexp_extract(text, COMPACT_OFFSET_PATTERN, group), F.lit(""))

    return F.concat(part(1), F.coalesce(part(2), F.lit(":00")), part(3), F.lit(":"), F.coalesce(part(4), F.lit("00")))


def _instant(name: str) -> Column:
    """Timestamp column ``name`` as an instant (:func:`_timestamp` of its cleaned text), in a helper column
    that :func:`_within_range` reads in a later step."""
    return _timestamp(_text(name)).alias(f"_instant_{name}")


def _within_range(name: str) -> Column:
    """Timestamp column ``name``: its :func:`_instant`, or null outside years 1 to 9999 in UTC.

    A step after the parsing, as it reads the instant twice: Spark keeps a column used twice in its own
    projection rather than parse the text twice.
    """
    instant = F.col(f"_instant_{name}")
    return F.when(F.unix_micros(instant).between(EARLIEST_MICROS, LATEST_MICROS), instant).alias(name)


def _timestamp_reasons(name: str, *, required: bool) -> list[Rule]:
    """missing_/invalid_<name> for a column typed by :func:`_instant` and :func:`_within_range`."""
    invalid = _reason(_text(name).isNotNull() & F.col(name).isNull(), f"invalid_{name}")
    return [_reason(_text(name).isNull(), f"missing_{name}"), invalid] if required else [invalid]


HORIZON = "_horizon"


def _horizon() -> Column:
    """The latest instant a timestamp may hold: the column :func:`_with_horizon` joins in."""
    return F.col(HORIZON)


def _with_horizon(raw: DataFrame, rules: CleaningRules) -> DataFrame:
    """``raw`` with the horizon, ``now`` plus the clock skew allowed between systems, as a column joined
    in from a one-row frame.

    As a literal, the horizon would be written into the code Spark generates for the typing pass: new
    code every batch, which the JVM compiles afresh and runs slowly until it has.
    """
    horizon = rules.now + timedelta(seconds=rules.future_skew_seconds)
    frame = raw.sparkSession.createDataFrame([(horizon,)], f"{HORIZON} timestamp")
    return raw.crossJoin(F.broadcast(frame))


def _any(flags: Sequence[Column]) -> Column:
    """True when any flag is (an OR chain: Spark compiles it, where exists() over an array runs a lambda)."""
    return functools.reduce(operator.or_, flags)


def _broken_rules(rules: Sequence[Rule]) -> Column:
    """A bit per rule, set when the row breaks it: one integer sum, cheap to compute and to test."""
    return functools.reduce(
        operator.add, [F.when(rule.condition, F.lit(1 << bit)).otherwise(F.lit(0)) for bit, rule in enumerate(rules)]
    )


def reason_list(mask: Column, codes: Sequence[str]) -> Column:
    """The codes whose bit is set in ``mask``, in order (an empty array for a valid row).

    Only a rejected row spells its codes out (joined as text, split again); a valid row, almost every
    row, costs one comparison.
    """
    spelled = F.concat_ws(",", *[F.when(mask.bitwiseAND(1 << bit) != 0, F.lit(code)) for bit, code in enumerate(codes)])
    return F.when(mask == 0, F.array().cast("array<string>")).otherwise(F.split(spelled, ","))


BROKEN = "_broken"


@dataclass(frozen=True)
class Typing:
    """A dataset's rows typed, flat: the row's position, the original text of every contract column
    (``_original_<name>``), the typed contract columns and ``_broken``, a bit per broken rule.

    Flat columns are cheap to cache; the reasons array and the original record are spelled out only for
    the rejected rows (:meth:`rejected`).
    """

    rows: DataFrame
    dataset: Dataset
    codes: tuple[str, ...]  # the reason code of each bit of ``_broken``

    def over(self, rows: DataFrame) -> Typing:
        """The same typing over ``rows`` (the cached, renumbered form of :attr:`rows`)."""
        return Typing(rows, self.dataset, self.codes)

    def original_record(self) -> Column:
        """The contract's columns as the file held them, as one struct."""
        return F.struct(*[F.col(f"_original_{name}").alias(name) for name in CONTRACTS[self.dataset].column_names])

    def valid(self) -> DataFrame:
        return self.rows.where(F.col(BROKEN) == 0)

    def rejected(self) -> DataFrame:
        """Rejects with the original text of the line and every reason code that applies."""
        return self.rows.where(F.col(BROKEN) != 0).select(
            F.col(SOURCE_LINE),
            reason_list(F.col(BROKEN), self.codes).alias(REASONS),
            F.to_json(self.original_record()).alias("record"),
        )

    def raw_text(self) -> DataFrame:
        """The raw layer's rows: source_line and every contract column as the file holds it."""
        return self.rows.select(
            F.col(SOURCE_LINE),
            *[F.col(f"_original_{name}").alias(name) for name in CONTRACTS[self.dataset].column_names],
        )


def _typing(
    raw: DataFrame, dataset: Dataset, steps: Sequence[Sequence[Column]], reasons: Sequence[Rule], rules: CleaningRules
) -> Typing:
    """Type ``raw`` (the raw layer's rows, with their positions) into a :class:`Typing`.

    Each of ``steps`` adds columns computed from the ones before, starting from every contract column's
    cleaned text (:func:`_text`); a value used by several later expressions is computed once, in its
    own step. Columns whose names start with ``_`` are helpers, dropped at the end. The rules every
    dataset shares (malformed_row, field_too_long) come first.
    """
    contract_columns = CONTRACTS[dataset].column_names
    too_long = _any(
        [
            F.length(F.col(name)) > F.lit(MAX_KEY_CHARS if name in KEY_COLUMNS else MAX_TEXT_CHARS)
            for name in contract_columns
        ]
    )
    malformed = F.col(MALFORMED) if MALFORMED in raw.columns else F.lit(False)
    positions = [F.col(c) for c in (SOURCE_LINE, *POSITION_COLUMNS) if c in raw.columns]
    frame = _with_horizon(raw, rules).select(
        *positions,
        F.col(HORIZON),
        malformed.alias("_malformed"),
        too_long.alias("_too_long"),
        *[F.col(name).alias(f"_original_{name}") for name in contract_columns],
        *[_clean_text(name).alias(f"_clean_{name}") for name in contract_columns],
    )
    for step in steps:
        frame = frame.select("*", *step)
    every_rule = [
        _reason(F.col("_malformed"), "malformed_row"),
        _reason(F.col("_too_long"), "field_too_long"),
        *reasons,
    ]
    rows = frame.select(
        *positions,
        *[F.col(f"_original_{name}") for name in contract_columns],
        *[F.col(name) for name in contract_columns],
        _broken_rules(every_rule).alias(BROKEN),
    )
    return Typing(rows, dataset, tuple(rule.code for rule in every_rule))


def _money(text: Column) -> Column:
    """Decimal text at full precision (so rounding to cents happens once, on the exact text); null if not."""
    return F.when(text.rlike(DECIMAL_PATTERN), text.try_cast(WIDE_DECIMAL))


def sales_typing(raw: DataFrame, rules: CleaningRules) -> Typing:
    """Type every sales row and note the rules it breaks."""
    c = F.col
    parsed = [
        _text("transaction_id").alias("transaction_id"),
        _instant("transaction_ts"),
        _text("customer_id").alias("customer_id"),
        _text("product_id").alias("product_id"),
        F.when(_text("quantity").rlike(INTEGER_PATTERN), _text("quantity").try_cast("int")).alias("quantity"),
        _money(_text("unit_price")).alias("_price_wide"),
        _money(_text("total_amount")).alias("_total_wide"),
        F.lower(_text("payment_method")).alias("payment_method"),
        F.lower(_text("status")).alias("status"),
    ]
    # try_cast: an amount too large for numeric(12,2) rejects its row instead of failing the batch.
    cents = [
        c("_price_wide").try_cast(MONEY).alias("unit_price"),
        c("_total_wide").try_cast(MONEY).alias("_total"),
        _within_range("transaction_ts"),
    ]
    derived = [(c("quantity") * c("unit_price")).try_cast(MONEY).alias("_derived_total")]
    total = [F.coalesce(c("_total"), c("_derived_total")).alias("total_amount")]
    reasons = [
        _reason(c("transaction_id").isNull(), "missing_transaction_id"),
        *_timestamp_reasons("transaction_ts", required=True),
        _reason(c("transaction_ts") > _horizon(), "future_timestamp"),
        _reason(_text("quantity").isNotNull() & c("quantity").isNull(), "invalid_quantity"),
        _reason(c("quantity") <= 0, "non_positive_quantity"),
        _reason(_text("unit_price").isNotNull() & c("unit_price").isNull(), "invalid_unit_price"),
        _reason(c("_price_wide") < 0, "negative_price"),
        _reason(
            (_text("total_amount").isNotNull() & c("_total").isNull())
            | (c("quantity").isNotNull() & c("unit_price").isNotNull() & c("_derived_total").isNull()),
            "invalid_total_amount",
        ),
        _reason(F.abs(c("_total") - c("quantity") * c("unit_price")) > F.lit(rules.total_tolerance), "total_mismatch"),
        _reason(c("status").isNotNull() & ~c("status").isin(*SALE_STATUSES), "invalid_status"),
        _reason(
            c("payment_method").isNotNull() & ~c("payment_method").isin(*PAYMENT_METHODS),
            "invalid_payment_method",
        ),
    ]
    return _typing(raw, Dataset.sales, [parsed, cents, derived, total], reasons, rules)


def _future(*names: str) -> Rule:
    """future_timestamp once, however many of the row's timestamps lie beyond the horizon."""
    return _reason(_any([F.col(n) > _horizon() for n in names]), "future_timestamp")


def customers_typing(raw: DataFrame, rules: CleaningRules) -> Typing:
    """Type every customers row and note the rules it breaks."""
    c = F.col
    active_text = F.lower(_text("is_active"))
    is_active = F.when(active_text.isin(*TRUE_TEXTS), F.lit(True)).when(active_text.isin(*FALSE_TEXTS), F.lit(False))
    parsed = [
        _text("customer_id").alias("customer_id"),
        _text("customer_name").alias("customer_name"),
        F.lower(_text("email")).alias("email"),
        _text("city").alias("city"),
        F.upper(_text("state")).alias("state"),
        F.upper(_text("country")).alias("country"),
        is_active.alias("is_active"),
        _instant("updated_at"),
    ]
    reasons = [
        _reason(c("customer_id").isNull(), "missing_customer_id"),
        *_timestamp_reasons("updated_at", required=True),
        _future("updated_at"),
        _reason(c("email").isNotNull() & ~c("email").rlike(EMAIL_PATTERN), "invalid_email"),
        _reason(_text("is_active").isNotNull() & c("is_active").isNull(), "invalid_is_active"),
    ]
    return _typing(raw, Dataset.customers, [parsed, [_within_range("updated_at")]], reasons, rules)


def products_typing(raw: DataFrame, rules: CleaningRules) -> Typing:
    """Type every products row and note the rules it breaks."""
    parsed = [
        _text("product_id").alias("product_id"),
        _text("product_name").alias("product_name"),
        _text("category").alias("category"),
        _instant("created_at"),
        _instant("updated_at"),
    ]
    ranged = [_within_range("created_at"), _within_range("updated_at")]
    reasons = [
        _reason(F.col("product_id").isNull(), "missing_product_id"),
        *_timestamp_reasons("updated_at", required=True),
        *_timestamp_reasons("created_at", required=False),
        _future("updated_at", "created_at"),
    ]
    return _typing(raw, Dataset.products, [parsed, ranged], reasons, rules)


def deduplicate_latest(valid: DataFrame, key: tuple[str, ...], columns: tuple[str, ...]) -> DataFrame:
    """One row per value of the ``key`` columns: the last occurrence in the file wins (re-sent records replace)."""
    latest = valid.groupBy(*key).agg(F.max_by(F.struct(*[F.col(c) for c in columns]), F.col(SOURCE_LINE)).alias("_r"))
    return latest.select(*[F.col(f"_r.{c}").alias(c) for c in columns])


@dataclass(frozen=True)
class Cleaning:
    """How one dataset's rows are typed and which columns identify a record within a batch."""

    dataset: Dataset
    typing: Callable[[DataFrame, CleaningRules], Typing]
    dedupe_key: tuple[str, ...]

    @property
    def staging_columns(self) -> tuple[str, ...]:
        """The staged row: its file line and the contract's columns, typed (``staging.<dataset>``'s order)."""
        return (SOURCE_LINE, *CONTRACTS[self.dataset].column_names)

    def staged(self, typing: Typing) -> DataFrame:
        """The valid rows, deduplicated: what staging holds, in key order.

        Ranges of the key go to partitions in order (the deduplication groups rows by key anyway, so this
        costs no extra shuffle) and each is sorted: COPY then adds the staging table's primary key entries in
        one ascending run, cheaper than the interleaved runs of hash partitions.
        """
        key = [F.col(k) for k in self.dedupe_key]
        latest = deduplicate_latest(typing.valid().repartitionByRange(*key), self.dedupe_key, self.staging_columns)
        return latest.sortWithinPartitions(*key)


CLEANING: dict[Dataset, Cleaning] = {
    Dataset.sales: Cleaning(Dataset.sales, sales_typing, ("transaction_id",)),
    Dataset.customers: Cleaning(Dataset.customers, customers_typing, ("customer_id", "updated_at")),
    Dataset.products: Cleaning(Dataset.products, products_typing, ("product_id", "updated_at")),
}
