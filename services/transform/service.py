"""The transform stage: raw object → raw.*, silver Parquet, staging.* and rejects, with conservation.

I/O lives here; the rules live in :mod:`services.transform.transforms`.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ijson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from ijson.common import ObjectBuilder
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.transform import transforms as T
from services.transform.settings import TransformSettings
from shared.batches import BatchRow, record_event
from shared.datasets import CONTRACTS, Dataset
from shared.db import raw_connection
from shared.events import BatchReceived, BatchStaged, Event, RowCounts
from shared.jsonlimits import MAX_JSON_DEPTH, MAX_JSON_RECORD_BYTES, nests_deeper_than
from shared.logs import get_logger
from shared.worker import Resources, run_stage

log = get_logger(__name__)

# Spark writes CSV the way PostgreSQL's COPY reads it: "" escapes a quote, an unquoted empty field is
# NULL and a quoted one an empty string, timestamps in ISO 8601 with their offset.
COPY_CSV_OPTIONS = {
    "header": "false",
    "quote": '"',
    "escape": '"',
    "emptyValue": '""',
    "ignoreLeadingWhiteSpace": "false",
    "ignoreTrailingWhiteSpace": "false",
    "timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX",
    "encoding": "UTF-8",
}


class ConservationError(Exception):
    """The stage's own row accounting does not add up: the batch fails loudly rather than load."""


@dataclass(frozen=True)
class StageOutput:
    counts: RowCounts
    raw_csv: Path
    staged_csv: Path
    rejects_csv: Path
    parquet: Path
    # Wall time of each phase of the Spark job: read, transform, write.
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TextShape:
    """What one cheap pass over a text file tells before Spark reads it."""

    lines: int  # as Spark's line reader splits them at LF
    open_quotes: bool  # some line has an odd number of quotes: a quoted field spans lines


SCAN_BLOCK = 16 * 1024 * 1024


def scan_text(path: Path, *, block_size: int = SCAN_BLOCK) -> TextShape:
    """Count the file's lines and look for a quoted field that spans lines, at the speed of a read.

    Only a file with such a field needs Spark's multi-line CSV parser, which reads the file as one
    partition; every other file is split across the cores.
    """
    opener = gzip.open if path.name.endswith(".gz") else open
    lines = 0
    open_quotes = False
    tail = b""
    last = b"\n"
    with opener(path, "rb") as fh:
        while block := fh.read(block_size):
            lines += block.count(b"\n")
            last = block[-1:]
            if open_quotes:
                continue
            if b'"' in block or b'"' in tail:
                text = tail + block
                cut = text.rfind(b"\n") + 1
                open_quotes = any(line.count(b'"') % 2 for line in text[:cut].split(b"\n"))
                tail = text[cut:]
            else:
                tail = block[block.rfind(b"\n") + 1 :]
    if last != b"\n":
        lines += 1
    open_quotes = open_quotes or tail.count(b'"') % 2 == 1
    return TextShape(lines=lines, open_quotes=open_quotes)


# RFC 4180: a doubled quote escapes a quote, a backslash is text, and a quoted field may hold newlines.
# Records end at LF (a CR before it is trimmed with the other whitespace), so CRLF and LF files, and
# files mixing both, read alike. A record whose field count differs from the header's keeps its text in
# the corrupt-record column and is rejected as malformed_row. multiLine is set per file (scan_text).
CSV_READ_OPTIONS = {
    "header": "true",
    "enforceSchema": "true",
    "mode": "PERMISSIVE",
    "encoding": "UTF-8",
    "quote": '"',
    "escape": '"',
    "lineSep": "\n",
    "columnNameOfCorruptRecord": T.CORRUPT_RECORD,
}


def csv_columns(path: Path, delimiter: str) -> list[str]:
    """The header's names, made unique (a repeated non-contract name gets a suffix) for the read schema."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
        header = next(csv.reader(fh, delimiter=delimiter), [])
    names: list[str] = []
    for raw_name in header:
        name = raw_name.strip()
        unique, n = name, 1
        while unique in names or unique == T.CORRUPT_RECORD:
            n += 1
            unique = f"{name}#{n}"
        names.append(unique)
    return names


@dataclass(frozen=True)
class JsonLimits:
    """Bounds on one JSON record: past them it is a rejected row rather than a parse that takes the worker's
    memory (ijson builds a 100,000-deep value in ~19 GB)."""

    max_depth: int = MAX_JSON_DEPTH
    max_bytes: int = MAX_JSON_RECORD_BYTES


# What stands in for a record past the limits: not JSON, so Spark keeps it as a corrupt record (malformed_row).
OVER_LIMITS = "record past the JSON limits: {reason}\n"


class _OverLimits:
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _array_elements(events: Iterator[tuple[str, Any]], limits: JsonLimits) -> Iterator[Any]:
    """Each element of a top-level JSON array, built from ijson's basic events; an element nested deeper or
    larger than ``limits`` is not built (its events are only counted) and comes out as :class:`_OverLimits`."""
    event, _ = next(events, ("end_array", None))
    if event != "start_array":
        raise ijson.JSONError("the file is not a JSON array")
    depth = 0
    builder: ObjectBuilder | None = None
    over: str | None = None
    size = 0
    for event, value in events:
        if depth == 0:
            if event == "end_array":
                break
            builder, over, size = ObjectBuilder(), None, 0
        if event in ("start_map", "start_array"):
            depth += 1
            if depth > limits.max_depth and over is None:
                over, builder = f"nested more than {limits.max_depth} levels deep", None
        elif event in ("end_map", "end_array"):
            depth -= 1
        if builder is not None:
            builder.event(event, value)
            size += len(value) if isinstance(value, str) else 1
            if size > limits.max_bytes:
                over, builder = f"larger than {limits.max_bytes} bytes", None
        if depth == 0:
            yield builder.value if builder is not None else _OverLimits(over or "")
    # Whatever follows the array is read too, so trailing garbage is reported as it was before.
    for _ in events:
        pass


def _array_within(events: Iterator[tuple[str, Any]], limits: JsonLimits) -> bool:
    """Whether every element of a top-level JSON array is within ``limits`` (broken JSON counts as within:
    the reading that follows reports it)."""
    depth = size = 0
    try:
        for event, value in events:
            if event in ("start_map", "start_array"):
                depth += 1
                # The array itself is one level above its elements.
                if depth > limits.max_depth + 1:
                    return False
            elif event in ("end_map", "end_array"):
                depth -= 1
                if depth == 1:
                    size = 0
            elif type(value) is str:
                size += len(value)
                if size > limits.max_bytes:
                    return False
    except ijson.JSONError:
        pass
    return True


def json_array_to_ndjson(source: Path, target: Path, limits: JsonLimits) -> None:
    """One line per element of a JSON array, streamed; an element that is no object stays a line of its own
    (Spark rejects it as malformed), so does one past ``limits``, and a broken tail becomes one last malformed
    line: nothing is dropped.

    A first pass only counts (depth and size): ijson's own builder, three times quicker than building in
    Python, then reads a file known to be within the limits.
    """
    opener = gzip.open if source.name.endswith(".gz") else open
    with opener(source, "rb") as fh:
        within = _array_within(ijson.basic_parse(fh, use_float=False), limits)
    with opener(source, "rb") as fh, target.open("w", encoding="utf-8") as out:
        items = (
            ijson.items(fh, "item", use_float=False)
            if within
            else _array_elements(ijson.basic_parse(fh, use_float=False), limits)
        )
        try:
            for item in items:
                if isinstance(item, _OverLimits):
                    out.write(OVER_LIMITS.format(reason=item.reason))
                    continue
                out.write(json.dumps(item, default=str, ensure_ascii=False))
                out.write("\n")
        except ijson.JSONError as exc:
            out.write(f"unreadable JSON after the records above: {exc}\n")


def _ndjson_line_over(line: bytes, limits: JsonLimits) -> str | None:
    """Why one NDJSON line (its LF included) is past ``limits``, or None; cheap for the ordinary line."""
    if len(line.rstrip(b"\r\n")) > limits.max_bytes:
        return f"larger than {limits.max_bytes} bytes"
    # The brackets a line holds bound its depth: only a line with many needs the exact count.
    if line.count(b"[") + line.count(b"{") > limits.max_depth and nests_deeper_than(
        line.decode("utf-8", "replace"), limits.max_depth
    ):
        return f"nested more than {limits.max_depth} levels deep"
    return None


def _ndjson_lines(fh: io.BufferedIOBase, limits: JsonLimits) -> Iterator[tuple[bytes, str | None]]:
    """The file's lines with why each is past ``limits`` (or None); a line longer than the limit is not held:
    it comes out cut at the limit."""
    while line := fh.readline(limits.max_bytes + 2):
        if not line.endswith(b"\n") and len(line) == limits.max_bytes + 2:
            while (rest := fh.readline(SCAN_BLOCK)) and not rest.endswith(b"\n"):
                pass
            yield line, f"larger than {limits.max_bytes} bytes"
        else:
            yield line, _ndjson_line_over(line, limits)


def bound_ndjson(source: Path, target: Path, limits: JsonLimits) -> Path:
    """``source`` when every line is within ``limits``; else ``target``, a copy in which each line past them
    is replaced by one that Spark reads as a corrupt record (so line numbers do not move)."""
    opener = gzip.open if source.name.endswith(".gz") else open
    with opener(source, "rb") as fh:
        if all(reason is None for _, reason in _ndjson_lines(fh, limits)):
            return source
    with opener(source, "rb") as fh, target.open("wb") as out:
        for line, reason in _ndjson_lines(fh, limits):
            out.write(line if reason is None else OVER_LIMITS.format(reason=reason).encode())
    return target


def read_source(
    spark: SparkSession,
    path: Path,
    *,
    file_format: str,
    delimiter: str | None,
    multiline: bool = True,
    json_limits: JsonLimits = JsonLimits(),
) -> DataFrame:
    """The file as Spark reads it (a ``.gz`` name is decompressed on the fly), every value as text.

    ``multiline``: a CSV file may hold quoted fields that span lines (slower: one partition). A JSON record
    past ``json_limits`` is read as a corrupt record.
    """
    if file_format == "csv":
        sep = delimiter or ","
        names = csv_columns(path, sep)
        fields = [StructField(name, StringType()) for name in [*names, T.CORRUPT_RECORD]]
        df = (
            spark.read.options(**CSV_READ_OPTIONS, sep=sep, multiLine=str(multiline).lower())
            .schema(StructType(fields))
            .csv(str(path))
        )
        if not names:
            return df
        # The CR of a CRLF line end belongs to the line end, not to the last field; a line holding only
        # whitespace (a blank line of a CRLF file) is skipped, as the reader skips empty ones.
        last = names[-1]
        corrupt = F.col(T.CORRUPT_RECORD)
        first = F.coalesce(F.btrim(F.col(f"`{names[0]}`"), F.lit(T.WHITESPACE)), F.lit(""))
        # The first column takes part so Spark allows the filter (not the corrupt-record column alone).
        blank = corrupt.isNotNull() & (F.btrim(corrupt, F.lit(T.WHITESPACE)) == "") & (first == "")
        return df.where(~blank).withColumn(last, F.regexp_replace(F.col(f"`{last}`"), "\r$", ""))
    if file_format == "json":
        lines = path.with_name(path.name + ".ndjson")
        json_array_to_ndjson(path, lines, json_limits)
        return read_source(spark, lines, file_format="ndjson", delimiter=None, json_limits=json_limits)
    if file_format == "ndjson":
        bounded = bound_ndjson(path, path.with_name(path.name + ".bounded.ndjson"), json_limits)
        df = spark.read.options(
            mode="PERMISSIVE", primitivesAsString="true", columnNameOfCorruptRecord=T.CORRUPT_RECORD
        ).json(str(bounded))
    elif file_format == "parquet":
        df = spark.read.parquet(str(path))
    else:
        raise ValueError(f"no reader for the format {file_format!r}")
    return T.as_text(df)


def _with_batch(df: DataFrame, batch_id: uuid.UUID) -> DataFrame:
    return df.select(F.lit(str(batch_id)).alias("batch_id"), *df.columns)


def _with_physical_lines(
    spark: SparkSession, raw: DataFrame, source: Path, *, quoted: bool, first_line: int
) -> DataFrame:
    """Records renumbered by the file line they start on, for a file with more lines than records (blank
    lines, quoted newlines), where counting records is not enough."""
    lines = spark.read.option("lineSep", "\n").text(str(source))
    starts = T.record_start_lines(lines, quoted=quoted, first_line=first_line)
    return (
        raw.alias("r")
        .join(starts.alias("s"), F.col(f"r.{T.SOURCE_LINE}") == F.col("s.record"), how="left")
        .select(
            F.coalesce(F.col("s.line"), F.col(f"r.{T.SOURCE_LINE}")).alias(T.SOURCE_LINE),
            *[F.col(f"r.{c}") for c in raw.columns if c != T.SOURCE_LINE],
        )
    )


def parquet_to_copy_csv(parquet_dir: Path, target: Path, batch_id: uuid.UUID) -> None:
    """The rows of a Parquet folder, batch_id first, as CSV the way COPY reads it (an unquoted empty field is
    NULL, a quoted one an empty string, timestamps with their zone). Streamed in record batches through
    pyarrow, which is much quicker at this than a Spark job."""
    target.mkdir(parents=True, exist_ok=True)
    batch_text = pa.scalar(str(batch_id))
    for n, part in enumerate(sorted(p for p in parquet_dir.glob("*.parquet") if not p.name.startswith((".", "_")))):
        parquet = pq.ParquetFile(part)
        schema = pa.schema(
            [pa.field("batch_id", pa.string())]
            + [pa.field(f.name, pa.string()) if pa.types.is_timestamp(f.type) else f for f in parquet.schema_arrow]
        )
        with pacsv.CSVWriter(
            target / f"part-{n:05d}.csv", schema, write_options=pacsv.WriteOptions(include_header=False)
        ) as out:
            for batch in parquet.iter_batches(batch_size=COPY_CSV_BATCH_ROWS):
                columns = [pa.repeat(batch_text, batch.num_rows), *map(_copy_value, batch.columns)]
                out.write_batch(pa.record_batch(columns, schema=schema))


def _copy_value(column: pa.Array) -> pa.Array:
    """A timestamp (an instant, stored in UTC) as UTC text with its zone: ``2024-05-01 10:00:00.000000Z``.

    Arrow formats a timestamp without a zone much faster than one with its zone, so the zone is written as
    text after it.
    """
    if not pa.types.is_timestamp(column.type):
        return column
    utc_text = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us")).cast(pa.string())
    return pc.binary_join_element_wise(utc_text, "Z", "")


COPY_CSV_BATCH_ROWS = 65_536


def split_for_cores(spark: SparkSession, source: Path) -> None:
    """Size the read's partitions so that every core gets a share of the file (Spark's default of 128 MiB
    would read a 100 MB file on one core)."""
    cores = spark.sparkContext.defaultParallelism
    size = max(source.stat().st_size, 1)
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(max(MIN_SPLIT_BYTES, -(-size // (2 * cores)))))


MIN_SPLIT_BYTES = 4 * 1024 * 1024


@contextmanager
def _timed(seconds: dict[str, float], phase: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds[phase] = time.perf_counter() - started


def run_job(
    spark: SparkSession,
    *,
    dataset: Dataset,
    batch_id: uuid.UUID,
    source: Path,
    out: Path,
    now: datetime,
    file_format: str = "csv",
    delimiter: str | None = None,
    json_limits: JsonLimits = JsonLimits(),
) -> StageOutput:
    """The Spark part of a batch of ``dataset``: every output written under ``out``, counts computed.

    The file is parsed and typed once, into a cache every output is written from (the staged CSV from
    the silver Parquet just written). Phases are timed into ``StageOutput.seconds``.
    """
    seconds: dict[str, float] = {}
    cached: list[DataFrame] = []
    cleaning = T.CLEANING[dataset]

    def keep(df: DataFrame) -> DataFrame:
        cached.append(df.persist())
        return cached[-1]

    try:
        with _timed(seconds, "read"):
            shape = scan_text(source) if file_format in ("csv", "ndjson") else None
            split_for_cores(spark, source)
            frame = read_source(
                spark,
                source,
                file_format=file_format,
                delimiter=delimiter,
                multiline=shape is not None and shape.open_quotes,
                json_limits=json_limits,
            )
        with _timed(seconds, "transform"):
            # Parsed and typed in one pass, cached flat (text, typed values, a bit per broken rule): every
            # output below reads the cache. Numbering the rows needs the partitions' sizes, which the
            # same pass gives.
            typing = cleaning.typing(T.to_contract_text(T.tag_positions(frame), dataset), T.CleaningRules(now=now))
            rows = keep(typing.rows)
            sizes = T.partition_sizes(rows)
            rows_in = sum(sizes.values())
            # A CSV file's first record is on line 2, after its header; other formats number records from 1.
            first_line = T.FIRST_DATA_LINE if file_format == "csv" else 1
            numbered = T.number_lines(rows, sizes, first_line=first_line)
            if shape is not None and shape.lines != rows_in + first_line - 1:
                numbered = keep(
                    _with_physical_lines(spark, numbered, source, quoted=file_format == "csv", first_line=first_line)
                )
            typed = typing.over(numbered)
            rejected = typed.rows.where(F.col(T.BROKEN) != 0).count()
        with _timed(seconds, "write"):
            _with_batch(typed.raw_text(), batch_id).write.options(**COPY_CSV_OPTIONS).csv(str(out / "raw"))
            cleaning.staged(typed).write.parquet(str(out / "parquet"))
            parquet = spark.read.parquet(str(out / "parquet"))
            valid = parquet.count()
            parquet_to_copy_csv(out / "parquet", out / "staged", batch_id)
            rejects = typed.rejected().select(
                F.col(T.SOURCE_LINE),
                F.concat(F.lit("{"), F.array_join(F.col(T.REASONS), ","), F.lit("}")).alias(T.REASONS),
                F.col("record"),
            )
            _with_batch(rejects, batch_id).write.options(**COPY_CSV_OPTIONS).csv(str(out / "rejects"))
    finally:
        for df in cached:
            df.unpersist()
    counts = RowCounts(
        rows_in=rows_in, rows_valid=valid, rows_rejected=rejected, rows_duplicate=rows_in - rejected - valid
    )
    return StageOutput(counts, out / "raw", out / "staged", out / "rejects", out / "parquet", seconds)


async def _copy_csv_dir(conn: AsyncConnection, directory: Path, schema: str, table: str, columns: list[str]) -> int:
    driver = await raw_connection(conn)
    copied = 0
    for part in sorted(directory.glob("part-*")):
        status = await driver.copy_to_table(table, schema_name=schema, source=part, columns=columns, format="csv")
        copied += int(status.split()[-1])
    return copied


async def load_rows(conn: AsyncConnection, dataset: Dataset, batch_id: uuid.UUID, output: StageOutput) -> None:
    """Load a job's rows into raw.*, staging.* and the rejects, replacing whatever an earlier attempt left for
    this batch (a rerun never adds rows); the row counts are checked. ``output.seconds`` gains ``copy``.

    The copies follow the Spark job rather than overlap it: on two cores the two only compete.
    """
    for schema, table in (("raw", dataset.value), ("staging", dataset.value), ("staging", f"{dataset.value}_rejects")):
        await conn.execute(text(f"DELETE FROM {schema}.{table} WHERE batch_id = :b"), {"b": batch_id})
    started = time.perf_counter()
    raw_columns = ["batch_id", T.SOURCE_LINE, *CONTRACTS[dataset].column_names]
    raw_rows = await _copy_csv_dir(conn, output.raw_csv, "raw", dataset.value, raw_columns)
    staged_rows = await _copy_csv_dir(
        conn, output.staged_csv, "staging", dataset.value, ["batch_id", *T.CLEANING[dataset].staging_columns]
    )
    rejected_rows = await _copy_csv_dir(
        conn,
        output.rejects_csv,
        "staging",
        f"{dataset.value}_rejects",
        ["batch_id", T.SOURCE_LINE, T.REASONS, "record"],
    )
    output.seconds["copy"] = time.perf_counter() - started
    counts = output.counts
    if (raw_rows, staged_rows, rejected_rows) != (counts.rows_in, counts.rows_valid, counts.rows_rejected):
        raise ConservationError(
            f"rows copied (raw {raw_rows}, staged {staged_rows}, rejected {rejected_rows}) differ from the "
            f"stage's counts {counts.model_dump()}"
        )
    if counts.rows_duplicate < 0 or counts.rows_in != counts.rows_valid + counts.rows_rejected + counts.rows_duplicate:
        raise ConservationError(f"rows do not add up: {counts.model_dump()}")


async def stage_batch(resources: Resources[TransformSettings], event: BatchReceived, spark: SparkSession) -> None:
    settings = resources.settings

    async def work(conn: AsyncConnection, batch: BatchRow) -> list[Event]:
        dataset = Dataset(batch.dataset)
        workdir = settings.work_dir / "transform" / str(batch.batch_id)
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        try:
            suffix = ".gz" if batch.compression == "gzip" else ""
            source = workdir / f"source.{batch.file_format}{suffix}"
            resources.store.download(batch.object_bucket, batch.object_key, source)
            output = run_job(
                spark,
                dataset=dataset,
                batch_id=batch.batch_id,
                source=source,
                out=workdir / "out",
                now=datetime.now(UTC),
                file_format=batch.file_format,
                delimiter=batch.csv_delimiter,
                json_limits=JsonLimits(settings.transform_max_json_depth, settings.transform_max_json_record_bytes),
            )
            await load_rows(conn, dataset, batch.batch_id, output)
            prefix = f"{dataset.value}/batch_id={batch.batch_id}"
            resources.store.put_directory(settings.bucket_processed, prefix, output.parquet)
            staged = BatchStaged(
                batch_id=batch.batch_id,
                dataset=dataset,
                counts=output.counts,
                parquet_prefix=f"{settings.bucket_processed}/{prefix}",
            )
            await record_event(conn, staged, stage="transform", fields=output.counts.model_dump())
            log.info(
                "transform.staged",
                **output.counts.model_dump(),
                seconds={k: round(v, 3) for k, v in output.seconds.items()},
            )
            return [staged]
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    await run_stage(
        resources,
        batch_id=event.batch_id,
        dataset=event.dataset.value,
        stage="transform",
        expected_status="received",
        work=work,
    )
