"""What an upload is: its format, its compression and its column names, read from its first bytes.

Detection order: the declared Content-Type, then the file name, then the bytes themselves. Compression
(gzip) is declared by Content-Encoding, a ``.gz`` name or the gzip magic number.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import zlib
from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa
import pyarrow.parquet as pq

from shared.jsonlimits import nests_deeper_than
from shared.objectstore import StreamObserver


class FileFormat(StrEnum):
    csv = "csv"
    json = "json"  # a JSON array of objects
    ndjson = "ndjson"  # one JSON object per line
    parquet = "parquet"


class UnreadableFile(Exception):
    """The bytes are not a file of the format they claim (or of any format we read)."""


class UnsupportedType(Exception):
    """A declared type we do not read."""


class TooDeeplyNested(Exception):
    """The first JSON record nests deeper than the limit (parsing it could exhaust memory or the stack)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the first record nests more than {limit} levels deep")
        self.limit = limit


GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
# Enough decompressed bytes to hold a header line or a first JSON record.
HEAD_LIMIT = 1024 * 1024
CSV_DELIMITERS = (",", ";")

MEDIA_TYPES: dict[str, FileFormat | None] = {
    "text/csv": FileFormat.csv,
    "application/csv": FileFormat.csv,
    "application/vnd.ms-excel": FileFormat.csv,
    "application/json": FileFormat.json,
    "text/json": FileFormat.json,
    "application/x-ndjson": FileFormat.ndjson,
    "application/ndjson": FileFormat.ndjson,
    "application/jsonl": FileFormat.ndjson,
    "application/x-jsonlines": FileFormat.ndjson,
    "application/vnd.apache.parquet": FileFormat.parquet,
    "application/x-parquet": FileFormat.parquet,
    "application/parquet": FileFormat.parquet,
    # Generic types say nothing: the name or the bytes decide.
    "text/plain": None,
    "application/octet-stream": None,
    "application/gzip": None,
    "application/x-gzip": None,
    "": None,
}
EXTENSIONS: dict[str, FileFormat] = {
    ".csv": FileFormat.csv,
    ".txt": FileFormat.csv,
    ".json": FileFormat.json,
    ".ndjson": FileFormat.ndjson,
    ".jsonl": FileFormat.ndjson,
    ".parquet": FileFormat.parquet,
    ".pq": FileFormat.parquet,
}


@dataclass(frozen=True)
class Header:
    columns: list[str]
    delimiter: str | None = None


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def is_gzip(content_encoding: str, file_name: str, head: bytes) -> bool:
    if content_encoding.strip().lower() in ("gzip", "x-gzip"):
        return True
    return file_name.lower().endswith(".gz") or head.startswith(GZIP_MAGIC)


def detect_format(content_type: str, file_name: str, plain_head: bytes) -> FileFormat:
    """Declared type, then name (``.gz`` removed), then the bytes."""
    media = media_type(content_type)
    if media not in MEDIA_TYPES:
        raise UnsupportedType(f"unsupported file type {media!r}")
    declared = MEDIA_TYPES[media]
    if declared is not None:
        if declared is FileFormat.json and _first_char(plain_head) == "{":
            return FileFormat.ndjson
        return declared
    name = file_name.lower().removesuffix(".gz")
    for extension, fmt in EXTENSIONS.items():
        if name.endswith(extension):
            if fmt is FileFormat.json and _first_char(plain_head) == "{":
                return FileFormat.ndjson
            return fmt
    return sniff(plain_head)


def sniff(plain_head: bytes) -> FileFormat:
    if plain_head.startswith(PARQUET_MAGIC):
        return FileFormat.parquet
    first = _first_char(plain_head)
    if first == "[":
        return FileFormat.json
    if first == "{":
        return FileFormat.ndjson
    return FileFormat.csv


def _first_char(head: bytes) -> str:
    text = head[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    return chr(text[0]) if text else ""


def gunzip_head(head: bytes) -> bytes:
    """Up to HEAD_LIMIT decompressed bytes of a gzip stream's start (a bomb cannot expand past it)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        return inflater.decompress(head, HEAD_LIMIT)
    except zlib.error as exc:
        raise UnreadableFile(f"not a valid gzip stream: {exc}") from exc


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start > 0 and len(data) - exc.start < 4 and len(data) >= HEAD_LIMIT:
            # A multi-byte character cut by the end of the head, not bad text.
            return data[: exc.start].decode("utf-8-sig")
        raise UnreadableFile(f"the file is not UTF-8 text (byte {exc.start})") from exc


def csv_header(plain_head: bytes) -> Header:
    if b"\x00" in plain_head.split(b"\n", 1)[0]:
        raise UnreadableFile("the header line holds NUL bytes: not a text file")
    text = _decode(plain_head)
    if not text.strip():
        raise UnreadableFile("the file is empty")
    first_line = text.split("\n", 1)[0]
    if "\r" in first_line.rstrip("\r"):
        # Spark's CSV reader and the line numbering split lines at LF only: such a file would be one record.
        raise UnreadableFile(
            "the lines end with a bare CR (classic Mac OS line ends), which is not read: save the file with LF "
            "or CRLF line ends"
        )
    if "\n" not in text and len(plain_head) >= HEAD_LIMIT:
        raise UnreadableFile(f"no header line in the first {HEAD_LIMIT} bytes")
    first_line = first_line.rstrip("\r")
    delimiter = max(CSV_DELIMITERS, key=first_line.count)
    columns = next(csv.reader(io.StringIO(first_line), delimiter=delimiter), [])
    return Header(columns=[c.strip() for c in columns], delimiter=delimiter)


def json_header(plain_head: bytes, fmt: FileFormat, *, max_depth: int) -> Header:
    """The keys of the first record of a JSON array or an NDJSON file (nested at most ``max_depth`` deep)."""
    text = _decode(plain_head).lstrip()
    if not text:
        raise UnreadableFile("the file is empty")
    decoder = json.JSONDecoder()
    start = 0
    if fmt is FileFormat.ndjson:
        first_line = text.split("\n", 1)[0].strip()
        if nests_deeper_than(first_line, max_depth):
            raise TooDeeplyNested(max_depth)
        try:
            first = json.loads(first_line)
        except json.JSONDecodeError as exc:
            raise UnreadableFile(f"NDJSON holds one JSON object per line; line 1 is not one ({exc.msg})") from exc
        if not isinstance(first, dict):
            raise UnreadableFile("NDJSON records must be JSON objects")
        return Header(columns=[str(k) for k in first])
    if fmt is FileFormat.json:
        if not text.startswith("["):
            raise UnreadableFile("a JSON upload must be an array of objects")
        start = len(text) - len(text[1:].lstrip())
        if text[start:].startswith("]"):
            return Header(columns=[])
    if nests_deeper_than(text, max_depth, start):
        raise TooDeeplyNested(max_depth)
    try:
        first, _ = decoder.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        raise UnreadableFile(f"the first record is not valid JSON: {exc.msg}") from exc
    if not isinstance(first, dict):
        raise UnreadableFile("records must be JSON objects")
    return Header(columns=[str(k) for k in first])


def parquet_header(footer: bytes) -> Header:
    """Column names from a Parquet file's tail (``PAR1`` magic, footer, its length, ``PAR1``)."""
    try:
        schema = pq.read_schema(pa.BufferReader(PARQUET_MAGIC + footer))
    except (pa.ArrowException, OSError) as exc:
        raise UnreadableFile(f"not a readable Parquet file: {exc}") from exc
    return Header(columns=list(schema.names))


def parquet_footer_length(tail: bytes) -> int:
    if len(tail) < 8 or tail[-4:] != PARQUET_MAGIC:
        raise UnreadableFile("not a Parquet file (no PAR1 footer)")
    return int.from_bytes(tail[-8:-4], "little")


class DecompressionBomb(Exception):
    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class GzipCheck:
    """Inflates a gzip upload as it streams, to refuse a truncated stream or a decompression bomb.

    Output is produced a bounded piece at a time and dropped: memory stays flat whatever the ratio.
    Concatenated gzip members (valid gzip) are followed.
    """

    PIECE = 1024 * 1024

    def __init__(
        self, *, max_bytes: int, max_ratio: int, ratio_floor: int, plain: StreamObserver | None = None
    ) -> None:
        self._inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self._plain_observer = plain
        self._max_bytes = max_bytes
        self._max_ratio = max_ratio
        self._ratio_floor = ratio_floor
        self.compressed = 0
        self.plain = 0

    def feed(self, chunk: bytes) -> None:
        self.compressed += len(chunk)
        data = chunk
        while data:
            if self._inflater.eof:
                # A new gzip member starts right after the last one ended.
                self._inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            try:
                out = self._inflater.decompress(data, self.PIECE)
            except zlib.error as exc:
                raise UnreadableFile(f"corrupt gzip stream: {exc}") from exc
            self.plain += len(out)
            self._check()
            if self._plain_observer is not None and out:
                self._plain_observer.feed(out)
            data = self._inflater.unconsumed_tail or self._inflater.unused_data

    def _check(self) -> None:
        if self.plain > self._max_bytes:
            raise DecompressionBomb(f"the file expands past {self._max_bytes} bytes", self._max_bytes)
        if self.plain > self._ratio_floor and self.plain > self._max_ratio * max(self.compressed, 1):
            raise DecompressionBomb(
                f"the file expands more than {self._max_ratio} times: a decompression bomb", self._max_bytes
            )

    def close(self) -> None:
        if not self._inflater.eof:
            raise UnreadableFile("the gzip stream is truncated")
        if self._plain_observer is not None:
            self._plain_observer.close()


class Utf8Check:
    """Refuses a text upload with bytes that are not UTF-8 anywhere in it, not only in its first MiB."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._offset = 0

    def feed(self, chunk: bytes) -> None:
        # Most uploads are ASCII: checking that is far cheaper than decoding, when no character is split.
        if chunk.isascii() and not self._decoder.getstate()[0]:
            self._offset += len(chunk)
            return
        try:
            self._decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            raise UnreadableFile(f"the file is not UTF-8 text (byte {self._offset + exc.start})") from exc
        self._offset += len(chunk)

    def close(self) -> None:
        try:
            self._decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise UnreadableFile("the file ends inside a UTF-8 character") from exc
