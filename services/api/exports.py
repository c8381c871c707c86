"""KPI answers as CSV or Parquet for spreadsheets and notebooks, written out chunk by chunk as PostgreSQL
hands the rows over, so a response's memory is bounded by a chunk, not by its range.

The format is ``?format=`` if given, else the best media type of ``Accept`` the endpoint can answer in;
JSON when neither says otherwise. Columns, their order and their types come from the read and the
endpoint's response model, so an export holds what the JSON holds: money as exact text with its places in
CSV and as decimal128 in Parquet, never through a float.
"""

from __future__ import annotations

import csv
import io
import types
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from services.api.deps import Settings
from services.api.repository import RowStream
from services.api.schemas import Places
from shared.http import ApiError
from shared.openapi import ErrorOut

ExportFormat = Literal["csv", "parquet"]
FORMATS = ("json", "csv", "parquet")
CSV_MEDIA_TYPE = "text/csv"
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
# Media types of Accept -> the format; the wildcards take the default of their family.
ACCEPTED = {
    "application/json": "json",
    CSV_MEDIA_TYPE: "csv",
    PARQUET_MEDIA_TYPE: "parquet",
    # what pandas, DuckDB and older tools send for Parquet
    "application/x-parquet": "parquet",
    "*/*": "json",
    "application/*": "json",
    "text/*": "csv",
}
# Wide enough for any sum of numeric(16, 2) over the longest range an endpoint allows.
DECIMAL_PRECISION = 38

# Declared on every KPI route: the alternative media types of its 200 and the errors of a format.
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "JSON by default; CSV or Parquet with `?format=` or the `Accept` header, streamed as an "
        "attachment named after the endpoint and the range",
        "content": {
            CSV_MEDIA_TYPE: {"schema": {"type": "string"}},
            PARQUET_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
        },
    },
    400: {"model": ErrorOut, "description": "`to` is before `from` or the range is too long (`invalid_range`)"},
    406: {"model": ErrorOut, "description": "`Accept` names no media type the endpoint answers in (`not_acceptable`)"},
    422: {
        "model": ErrorOut,
        "description": "an unknown `format` (`unsupported_format`), or a parameter that is not valid "
        "(`invalid_request`)",
    },
}


def _parse_accept(header: str) -> list[tuple[str, float]]:
    """The media ranges of an Accept header with their quality, in the header's order; q=0 ones left out."""
    ranges = []
    for item in header.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media and quality > 0:
            ranges.append((media.lower(), quality))
    return ranges


def negotiate(requested: str | None, accept: str | None) -> str:
    """``requested`` (the query's format) if it is one; else the first of Accept's best-quality media types
    that is one; JSON when Accept is absent."""
    if requested is not None:
        if requested.lower() not in FORMATS:
            # An unknown value of an enum parameter is a 422, as FastAPI answers for the others.
            raise ApiError(
                422,
                "unsupported_format",
                f"unknown format {requested!r}; use one of {', '.join(FORMATS)}",
                {"format": requested, "supported": list(FORMATS)},
            )
        return requested.lower()
    if accept is None or not accept.strip():
        return "json"
    known = [(ACCEPTED[media], quality) for media, quality in _parse_accept(accept) if media in ACCEPTED]
    if not known:
        raise ApiError(
            406,
            "not_acceptable",
            "none of the media types in Accept can be answered",
            {"accept": accept, "supported": ["application/json", CSV_MEDIA_TYPE, PARQUET_MEDIA_TYPE]},
        )
    best = max(quality for _, quality in known)
    return next(fmt for fmt, quality in known if quality == best)


@dataclass(frozen=True)
class Column:
    name: str
    arrow_type: pa.DataType
    to_text: Callable[[Any], str]


def _non_null(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        (inner,) = (a for a in get_args(annotation) if a is not type(None))
        return inner
    return annotation


def _column(name: str, model: type[BaseModel]) -> Column:
    by_alias = {field.alias or key: field for key, field in model.model_fields.items()}
    field = by_alias[name]
    kind = _non_null(field.annotation)
    if kind is Decimal:
        digits = next(m.digits for m in field.metadata if isinstance(m, Places))
        return Column(name, pa.decimal128(DECIMAL_PRECISION, digits), lambda v: f"{v:.{digits}f}")
    if kind is bool:
        return Column(name, pa.bool_(), lambda v: "true" if v else "false")
    if kind is int:
        return Column(name, pa.int64(), str)
    if kind is date:
        return Column(name, pa.date32(), date.isoformat)
    if kind is str:
        return Column(name, pa.string(), str)
    raise TypeError(f"{model.__name__}.{name}: no export type for {field.annotation}")


def columns_of(names: Sequence[str], model: type[BaseModel]) -> list[Column]:
    """The export's columns: the read's, in its order, typed by the response model's field of that name."""
    return [_column(name, model) for name in names]


async def csv_bytes(columns: list[Column], chunks: AsyncIterator[Sequence[Sequence[Any]]]) -> AsyncIterator[bytes]:
    """A header line, then each chunk's rows as one piece; NULL is an empty field."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([c.name for c in columns])
    yield buffer.getvalue().encode()
    async for chunk in chunks:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(
            ["" if value is None else column.to_text(value) for column, value in zip(columns, row, strict=True)]
            for row in chunk
        )
        yield buffer.getvalue().encode()


class _Drain:
    """The file ParquetWriter writes into: what it wrote is taken out after each row group."""

    def __init__(self) -> None:
        self.pending = bytearray()
        self.position = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self.pending += data
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data = bytes(self.pending)
        self.pending.clear()
        return data


async def parquet_bytes(columns: list[Column], chunks: AsyncIterator[Sequence[Sequence[Any]]]) -> AsyncIterator[bytes]:
    """A Parquet file whose row groups are the chunks, each sent as soon as it is written; the footer last."""
    schema = pa.schema([pa.field(c.name, c.arrow_type) for c in columns])
    sink = _Drain()
    writer = pq.ParquetWriter(pa.PythonFile(sink, mode="w"), schema)
    try:
        async for chunk in chunks:
            values = list(zip(*chunk, strict=True)) if chunk else [() for _ in columns]
            writer.write_table(
                pa.Table.from_arrays(
                    [pa.array(v, type=c.arrow_type) for c, v in zip(columns, values, strict=True)], schema=schema
                )
            )
            yield sink.take()
    finally:
        writer.close()
    yield sink.take()


@dataclass(frozen=True)
class Export:
    """A request for a KPI answer as a file: its format and how many rows to fetch and write at a time."""

    format: ExportFormat
    chunk_rows: int

    def response(self, endpoint: str, start: date, end: date, model: type[BaseModel], rows: RowStream) -> Response:
        columns = columns_of(rows.columns, model)
        body = csv_bytes(columns, rows.chunks) if self.format == "csv" else parquet_bytes(columns, rows.chunks)
        media_type = f"{CSV_MEDIA_TYPE}; charset=utf-8" if self.format == "csv" else PARQUET_MEDIA_TYPE
        filename = f"kpis-{endpoint}_{start.isoformat()}_{end.isoformat()}.{self.format}"
        return StreamingResponse(
            body,
            media_type=media_type,
            headers={"Content-Disposition": f'attachment; filename="{filename}"', "Vary": "Accept"},
        )


def single_row(row: dict[str, Any]) -> RowStream:
    """A row already read (the summary's) as a stream of one chunk, its keys the columns."""

    async def chunks() -> AsyncIterator[Sequence[Sequence[Any]]]:
        yield [tuple(row.values())]

    return RowStream(list(row), chunks())


def _format_schema(schema: dict[str, Any]) -> None:
    # Documented as the enum it is; the handler checks it itself to answer 422 unsupported_format.
    schema.pop("anyOf", None)
    schema.update({"type": "string", "enum": list(FORMATS)})


# async, as services/api/deps.py says why.
async def _export(
    request: Request,
    response: Response,
    settings: Settings,
    format: Annotated[
        str | None,
        Query(
            description="json (the default), csv or parquet; overrides the Accept header",
            json_schema_extra=_format_schema,
        ),
    ] = None,
) -> Export | None:
    # JSON answers vary with Accept too; FastAPI copies this header onto them.
    response.headers["Vary"] = "Accept"
    chosen = negotiate(format, request.headers.get("accept"))
    if chosen == "json":
        return None
    return Export("csv" if chosen == "csv" else "parquet", settings.api_export_chunk_rows)


# A KPI handler's requested file format; None answers JSON.
ExportAs = Annotated[Export | None, Depends(_export)]
