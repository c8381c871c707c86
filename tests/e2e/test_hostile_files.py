"""Hostile files against the running platform's ingest API: each ends in a clear error or a traceable batch.

Every case of :mod:`tests.hostile.corpus` is posted once, in corpus order, by a module fixture (the
pipeline then works through the accepted batches while the cases are checked one by one). For every case:
the ingest never answers 5xx; a refused file leaves the raw bucket exactly as it was; an accepted file is
in the store at its batch's object key with the exact bytes posted, under a safe key, and its batch ends
in the expected terminal state with the expected rejects.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg
import httpx
import pytest

from shared.objectstore import ObjectStore, create_object_store
from tests.conftest import Platform
from tests.e2e.test_sales_pipeline import wait_terminal
from tests.hostile.corpus import BY_NAME, CASES, DEEP_AFTER, FORMULAS, HostileFile, tx_id

pytestmark = pytest.mark.e2e

# sales/dt=YYYY-MM-DD/<batch_id>/<a cleaned name of at most 200 safe characters>
SAFE_KEY = r"sales/dt=\d{{4}}-\d{{2}}-\d{{2}}/{batch_id}/[A-Za-z0-9._-]{{1,200}}"

Db = Callable[..., list[asyncpg.Record]]
Check = Callable[[Db, uuid.UUID], None]


# --- expectations ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refused:
    """Answered with this status and error code; nothing stored."""

    status: int
    code: str


@dataclass(frozen=True)
class Loaded:
    """202, then ``loaded`` with these counts and exactly these rejects (source line → reason codes; None: any)."""

    rows_in: int
    valid: int
    rejected: int = 0
    duplicate: int = 0
    rejects: Mapping[int, frozenset[str] | None] = field(default_factory=dict)
    stored_as: str | None = None
    check: Check | None = None


@dataclass(frozen=True)
class Halted:
    """202, then ``quarantined`` or ``failed`` with an error naming the cause (and these rejects, if given)."""

    status: Literal["quarantined", "failed"]
    error_contains: str = ""
    rejects: Mapping[int, frozenset[str] | None] | None = None


Expectation = Refused | Loaded | Halted


def reasons(*codes: str) -> frozenset[str]:
    return frozenset(codes)


# --- extra checks on accepted batches -----------------------------------------------------------------------


def raw_values(db: Db, batch_id: uuid.UUID, column: str) -> dict[int, str | None]:
    rows = db(f"SELECT source_line, {column} AS v FROM raw.sales WHERE batch_id = $1", batch_id)
    return {r["source_line"]: r["v"] for r in rows}


def staged_values(db: Db, batch_id: uuid.UUID, column: str) -> dict[str, Any]:
    rows = db(f"SELECT transaction_id, {column} AS v FROM staging.sales WHERE batch_id = $1", batch_id)
    return {r["transaction_id"]: r["v"] for r in rows}


def formulas_verbatim(db: Db, batch_id: uuid.UUID) -> None:
    case = "formula-injection"
    customers, products = raw_values(db, batch_id, "customer_id"), raw_values(db, batch_id, "product_id")
    assert customers[2] == FORMULAS["cmd"]
    assert (customers[3], products[3]) == (FORMULAS["sum"], FORMULAS["at"])
    assert customers[4] == FORMULAS["minus"]
    assert products[5] == FORMULAS["hyperlink"]
    assert raw_values(db, batch_id, "transaction_id")[6] == f"={tx_id(case, 5)}+1"
    staged = staged_values(db, batch_id, "customer_id")
    assert staged[tx_id(case, 1)] == FORMULAS["cmd"]
    assert staged[tx_id(case, 3)] == FORMULAS["minus"]
    assert f"={tx_id(case, 5)}+1" in staged


def nul_became_replacement_char(db: Db, batch_id: uuid.UUID) -> None:
    assert raw_values(db, batch_id, "customer_id")[7] == "HC-\ufffd-5"
    assert raw_values(db, batch_id, "quantity")[12] == "1\ufffd2"
    assert staged_values(db, batch_id, "customer_id")[tx_id("nul-inside-fields", 6)] == "HC-\ufffd-5"


def nul_first_row_kept(db: Db, batch_id: uuid.UUID) -> None:
    assert raw_values(db, batch_id, "transaction_id")[11] == "\ufffd" + tx_id("nul-at-row-start", 10)


def exact_status_column_wins(db: Db, batch_id: uuid.UUID) -> None:
    assert set(raw_values(db, batch_id, "status").values()) == {"completed"}
    assert set(staged_values(db, batch_id, "status").values()) == {"completed"}


def no_carriage_returns(db: Db, batch_id: uuid.UUID) -> None:
    assert set(raw_values(db, batch_id, "status").values()) == {"completed"}
    assert len(raw_values(db, batch_id, "transaction_id")) == 20


def year_one_loaded(db: Db, batch_id: uuid.UUID) -> None:
    first_instant = datetime(1, 1, 1, tzinfo=UTC)
    assert staged_values(db, batch_id, "transaction_ts")[tx_id("timestamps-at-year-edges", 13)] == first_instant
    assert [r["full_date"] for r in db("SELECT full_date FROM processed.dim_date WHERE date_key = 10101")] == [
        first_instant.date()
    ]


# --- what each case must do -------------------------------------------------------------------------------------

EXPECTED: dict[str, Expectation] = {
    # No bytes, no header: nothing to check against the contract.
    "empty-body": Refused(400, "unreadable_file"),
    # Random bytes are not text: refused at the door, never a batch.
    "binary-garbage": Refused(400, "unreadable_file"),
    # A declared image type is not a format the ingest reads.
    "png-declared-png": Refused(415, "unsupported_media_type"),
    # Declared CSV, but the bytes are not UTF-8 text (DESIGN §3: UTF-8).
    "png-declared-csv": Refused(400, "unreadable_file"),
    # UTF-16 is not the contract's UTF-8: its header line is full of NULs.
    "utf16-csv": Refused(400, "unreadable_file"),
    # ASCII header but Latin-1 rows within the read-ahead: not UTF-8, refused with the byte's position.
    "latin1-csv": Refused(400, "unreadable_file"),
    # The same Latin-1 row after the first 2 MiB must be refused the same way, not loaded as mojibake.
    "latin1-after-head": Refused(400, "unreadable_file"),
    # XML is not one of the formats (csv, json, ndjson, parquet).
    "xml-declared-xml": Refused(415, "unsupported_media_type"),
    # The header decompresses but the stream ends early: a cut file is refused, not loaded in part.
    "gzip-truncated": Refused(400, "unreadable_file"),
    # Valid gzip around bytes that are not text.
    "gzip-of-garbage": Refused(400, "unreadable_file"),
    # The gzip magic then a stream zlib cannot inflate.
    "gzip-magic-then-garbage": Refused(400, "unreadable_file"),
    # A valid header then 1 GiB of zeros in ~1 MB: past 64 MiB the ratio (>100) marks a bomb.
    "gzip-bomb": Refused(413, "decompression_bomb"),
    # The same bomb as 1,024 concatenated gzip members: the check follows members.
    "gzip-bomb-members": Refused(413, "decompression_bomb"),
    # Parquet compresses its own pages; a gzipped Parquet file is refused as unsupported.
    "gzip-parquet": Refused(415, "unsupported_media_type"),
    # A header and no rows is a valid, empty batch.
    "header-only": Loaded(0, 0),
    # The header without its line end is still a header.
    "header-only-no-newline": Loaded(0, 0),
    # No line end in the first 1 MiB: there is no header line to check.
    "header-2mb-no-newline": Refused(400, "unreadable_file"),
    # BOM and blanks around names are trimmed on both sides (ingest and transform): the names match.
    "header-bom-and-spaces": Loaded(10, 10),
    # A customers file posted to sales lacks the sales contract's required columns.
    "header-of-customers": Refused(422, "contract_mismatch"),
    # `status` twice: which one is the contract's is ambiguous.
    "duplicate-contract-column": Refused(422, "duplicate_columns"),
    # " status " trims to `status`: still a duplicate of a contract column.
    "duplicate-column-after-trim": Refused(422, "duplicate_columns"),
    # An extra column twice is schema drift, kept in raw and ignored downstream.
    "duplicate-extra-column": Loaded(10, 10),
    # Names are exact (§3): `STATUS` is an extra column; the `status` column's values must be the ones loaded.
    "contract-column-in-other-case": Loaded(10, 10, check=exact_status_column_wins),
    # 4,991 extra columns before the contract's: drift, loaded.
    "columns-5000": Loaded(5, 5),
    # 25,000 columns are beyond what is read (10,000): refused at the door with the limit named.
    "columns-25000": Refused(422, "too_many_columns"),
    # A 10 MiB value in an extra column is kept in the raw object; the rows load.
    "field-10mb-extra-column": Loaded(3, 3),
    # A 10 MiB key is damage, not data: that row is rejected (field_too_long); one row in three is past
    # the reject-rate gate, so the batch is quarantined rather than loaded.
    "field-10mb-transaction-id": Halted("quarantined", "rows.reject_rate", rejects={3: reasons("field_too_long")}),
    # Same for a 10 MiB customer_id.
    "field-10mb-customer-id": Halted("quarantined", "rows.reject_rate", rejects={3: reasons("field_too_long")}),
    # Only the last path segment, cleaned, names the object: never a path of the client's choosing.
    "name-dotdot-posix": Loaded(3, 3, stored_as="passwd"),
    # Backslashes count as separators too: a Windows traversal keeps only `x.csv`.
    "name-dotdot-windows": Loaded(3, 3, stored_as="x.csv"),
    # An absolute path is cut to its last segment, inside sales/dt=.../<batch_id>/.
    "name-absolute-posix": Loaded(3, 3, stored_as="sales.csv"),
    # A drive-letter path likewise.
    "name-absolute-windows": Loaded(3, 3, stored_as="evil.csv"),
    # Nothing left after cleaning: the default name.
    "name-only-dots": Loaded(3, 3, stored_as="upload.csv"),
    # Names are cut to 200 characters.
    "name-very-long": Loaded(3, 3, stored_as="a" * 200),
    # A NUL (only possible in the query) does not hide the traversal after it.
    "name-with-nul": Loaded(3, 3, stored_as="passwd"),
    # CR/LF in a name become `_`: no header or log line injection through the key.
    "name-with-newline": Loaded(3, 3, stored_as="sales_X-Injected_1.csv"),
    # The multipart filename gets the same treatment as X-File-Name.
    "name-multipart-traversal": Loaded(3, 3, stored_as="evil.csv"),
    # Formulas are data: stored verbatim in raw and staging (escaping is an export concern).
    "formula-injection": Loaded(5, 5, check=formulas_verbatim),
    # NUL inside a field: U+FFFD in the tables (PostgreSQL text has no NUL), a NUL-broken number is rejected.
    "nul-inside-fields": Loaded(
        30, 29, 1, rejects={12: reasons("invalid_quantity")}, check=nul_became_replacement_char
    ),
    # A row that starts with NUL is still a row (not a comment): it is loaded with U+FFFD, not skipped.
    "nul-at-row-start": Loaded(30, 30, check=nul_first_row_kept),
    # Every row rejected: reject rate 100% > 10% quarantines the batch, the rejects say why.
    "all-rows-invalid": Halted(
        "quarantined", "rows.reject_rate", rejects={line: reasons("invalid_quantity") for line in range(2, 22)}
    ),
    # 2 of 20 rows without transaction_ts: 10% nulls in a required column (> 5%) quarantines.
    "required-column-nulls": Halted(
        "quarantined",
        "not_null.raw.transaction_ts",
        rejects={6: reasons("missing_transaction_ts"), 16: reasons("missing_transaction_ts")},
    ),
    # Year 0 or 10000 in UTC (an offset moves 0001-01-01 or 9999-12-31 there) is no timestamp the platform holds:
    # those rows are rejected, not a COPY failing the batch; the first instant of year 1 loads, calendar day too.
    "timestamps-at-year-edges": Loaded(
        30,
        28,
        2,
        rejects={8: reasons("invalid_transaction_ts"), 20: reasons("invalid_transaction_ts")},
        check=year_one_loaded,
    ),
    # Rows with fewer or more fields than the header are malformed: rejected, never loaded shifted or cut.
    "ragged-rows": Loaded(30, 28, 2, rejects={10: None, 20: None}),
    # A quote opened on line 16 and never closed: that record is malformed and rejected, not loaded.
    "unbalanced-quote": Loaded(15, 14, 1, rejects={16: None}),
    # CRLF and LF line ends mixed: every row is read, with no stray CR in a value.
    "crlf-mixed-with-lf": Loaded(20, 20, check=no_carriage_returns),
    # Classic Mac line ends (bare CR): Spark and the line numbering split at LF only, so it is refused with why.
    "csv-bare-cr": Refused(400, "unreadable_file"),
    # Blank lines are skipped; a reject names the line of the file it came from (line 21).
    "blank-lines": Loaded(20, 19, 1, rejects={21: reasons("invalid_quantity")}),
    # RFC 4180 allows a newline in a quoted field; the reject after it still names its file line (12).
    "quoted-newline": Loaded(20, 19, 1, rejects={12: reasons("invalid_quantity")}),
    # A JSON array parsed as CSV: its header line `[` lacks the contract's columns.
    "json-declared-csv": Refused(422, "contract_mismatch"),
    # CSV declared JSON: not an array of objects.
    "csv-declared-json": Refused(400, "unreadable_file"),
    # Parquet bytes declared CSV: not text.
    "parquet-declared-csv": Refused(400, "unreadable_file"),
    # An object around the records: its keys are not the contract's columns.
    "json-object-wrapper": Refused(422, "contract_mismatch"),
    # An array of numbers holds no records.
    "json-array-of-scalars": Refused(400, "unreadable_file"),
    # Arrays of arrays are not records either.
    "json-array-of-arrays": Refused(400, "unreadable_file"),
    # One object pretty-printed over many lines is neither a JSON array nor NDJSON (one record per line).
    "json-object-pretty": Refused(400, "unreadable_file"),
    # 20 records then a bare number: the number is a rejected record, the 20 load.
    "json-array-mixed": Loaded(21, 20, 1, rejects={21: None}),
    # A line cut mid-record is rejected on its own line (no id, no timestamp); the other 29 load.
    "ndjson-broken-line": Loaded(
        30, 29, 1, rejects={15: reasons("malformed_row", "missing_transaction_id", "missing_transaction_ts")}
    ),
    # The same after a blank line: the reject still names its line of the file (16).
    "ndjson-blank-line": Loaded(
        30, 29, 1, rejects={16: reasons("malformed_row", "missing_transaction_id", "missing_transaction_ts")}
    ),
    # A first record nested 100,000 deep is refused at the door (it was a 500).
    "json-deep-first": Refused(422, "too_deeply_nested"),
    # Past the first MiB the ingest reads, a record nested past the limit (65 levels; 100,000 in the array,
    # on which ijson grew the worker to ~19 GB) is accepted and rejected by the transform, never parsed; the
    # other records load.
    "ndjson-deep-past-head": Loaded(
        DEEP_AFTER + 2,
        DEEP_AFTER + 1,
        1,
        rejects={DEEP_AFTER + 1: reasons("malformed_row", "missing_transaction_id", "missing_transaction_ts")},
    ),
    "json-deep-past-head": Loaded(
        DEEP_AFTER + 2,
        DEEP_AFTER + 1,
        1,
        rejects={DEEP_AFTER + 1: reasons("malformed_row", "missing_transaction_id", "missing_transaction_ts")},
    ),
    # PAR1 at the start but no footer at the end: not a Parquet file, the staged object removed.
    "parquet-truncated": Refused(400, "unreadable_file"),
    # A footer that is not Thrift: unreadable.
    "parquet-garbage-footer": Refused(400, "unreadable_file"),
    # A readable Parquet schema without the contract's columns.
    "parquet-wrong-columns": Refused(422, "contract_mismatch"),
    # The footer is fine, a data page is not: found only by the transform, the batch fails with the reason.
    "parquet-corrupt-page": Halted("failed"),
    # `..` as the dataset is not a dataset (the request target is sent verbatim).
    "dataset-dotdot": Refused(404, "unknown_dataset"),
    # Percent-encoded `..` is decoded to the same non-dataset.
    "dataset-dotdot-encoded": Refused(404, "unknown_dataset"),
    # Dataset names are exact.
    "dataset-uppercase": Refused(404, "unknown_dataset"),
    # Multipart uploads carry the file in the field `file`.
    "multipart-without-file-field": Refused(400, "missing_file"),
    # A `file` field that is plain text, not a file part, is no file either.
    "multipart-file-as-text-field": Refused(400, "missing_file"),
    # One file per upload.
    "multipart-two-files": Refused(400, "too_many_files"),
    # A multipart body without a boundary cannot be parsed: a 400 that says so, not a 500.
    "multipart-without-boundary": Refused(400, "invalid_multipart"),
}

# --- posting --------------------------------------------------------------------------------------------------


@dataclass
class Posted:
    status: int | None
    body: Any
    text: str
    failure: str | None
    sha256: str
    size: int
    keys_before: set[str]
    keys_after: set[str]

    @property
    def code(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return str(self.body["error"].get("code"))
        return None


def send(client: httpx.Client, platform: Platform, case: HostileFile) -> tuple[httpx.Response, bytes]:
    payload, body, headers = case.request()
    request = client.build_request(
        "POST",
        f"{platform.ingest}/v1/datasets/{case.dataset}/files",
        params=dict(case.query),
        content=body,
        headers=headers,
    )
    if case.raw_target is not None:
        request.extensions["target"] = case.raw_target.encode()
    return client.send(request), payload


@pytest.fixture(scope="module")
def store(platform: Platform) -> ObjectStore:
    return create_object_store(platform.settings)


@pytest.fixture(scope="module")
def posted(platform: Platform, store: ObjectStore) -> dict[str, Posted]:
    """Every case posted once, in corpus order, with the raw bucket's keys before and after each post."""
    bucket = platform.settings.bucket_raw
    results: dict[str, Posted] = {}
    with platform.client("ingest:write") as client:
        for case in CASES:
            before = set(store.list_keys(bucket))
            try:
                response, payload = send(client, platform, case)
                status, text, failure = response.status_code, response.text, None
            except httpx.HTTPError as exc:
                payload = case.build()
                status, text, failure = None, "", f"{type(exc).__name__}: {exc}"
            try:
                body = response.json() if status is not None else None
            except ValueError:
                body = None
            results[case.name] = Posted(
                status=status,
                body=body,
                text=text[:2000],
                failure=failure,
                sha256=hashlib.sha256(payload).hexdigest(),
                size=len(payload),
                keys_before=before,
                keys_after=set(store.list_keys(bucket)),
            )
            del payload
    return results


@pytest.fixture(scope="module")
def reader(platform: Platform) -> Iterator[httpx.Client]:
    with platform.client("batches:read") as client:
        yield client


@pytest.fixture(scope="module")
def db(platform: Platform) -> Db:
    def fetch(sql: str, *args: Any) -> list[asyncpg.Record]:
        async def run() -> list[asyncpg.Record]:
            conn = await asyncpg.connect(platform.settings.database_url)
            try:
                return list(await conn.fetch(sql, *args))
            finally:
                await conn.close()

        return asyncio.run(run())

    return fetch


def stored_sha256(store: ObjectStore, bucket: str, key: str) -> str:
    digest = hashlib.sha256()
    reader = store.open(bucket, key)
    try:
        while chunk := reader.read(1024 * 1024):
            digest.update(chunk)
    finally:
        reader.close()
        release = getattr(reader, "release_conn", None)
        if release is not None:
            release()
    return digest.hexdigest()


def rejects_of(db: Db, batch_id: uuid.UUID) -> dict[int, frozenset[str]]:
    rows = db("SELECT source_line, reasons FROM staging.sales_rejects WHERE batch_id = $1", batch_id)
    return {r["source_line"]: frozenset(r["reasons"]) for r in rows}


def assert_rejects(actual: dict[int, frozenset[str]], expected: Mapping[int, frozenset[str] | None]) -> None:
    assert set(actual) == set(expected), f"rejected lines {sorted(actual)} != {sorted(expected)}: {actual}"
    for line, codes in expected.items():
        assert actual[line], f"line {line} rejected without a reason"
        if codes is not None:
            assert actual[line] == codes, f"line {line}: {sorted(actual[line])} != {sorted(codes)}"


def test_every_case_has_an_expectation() -> None:
    assert set(EXPECTED) == set(BY_NAME)
    assert len(CASES) >= 25


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_hostile_file(
    name: str, platform: Platform, posted: dict[str, Posted], store: ObjectStore, reader: httpx.Client, db: Db
) -> None:
    expected, got = EXPECTED[name], posted[name]
    assert got.failure is None, f"no HTTP answer: {got.failure}"
    assert got.status is not None and got.status < 500, f"{got.status}: {got.text}"
    new_keys, gone_keys = got.keys_after - got.keys_before, got.keys_before - got.keys_after
    assert not gone_keys, f"objects disappeared: {gone_keys}"

    if isinstance(expected, Refused):
        assert (got.status, got.code) == (expected.status, expected.code), got.text
        assert got.body["error"]["message"], got.text
        # Nothing stored: no object under sales/ and no leftover in _incoming/ either.
        assert not new_keys, f"a refused file left objects: {new_keys}"
        return

    assert got.status == 202, got.text
    batch_id = got.body["batch_id"]
    assert (got.body["sha256"], got.body["size_bytes"]) == (got.sha256, got.size)
    [row] = db("SELECT object_bucket, object_key, file_name FROM ops.batches WHERE batch_id = $1", uuid.UUID(batch_id))
    bucket, key = row["object_bucket"], row["object_key"]
    assert bucket == platform.settings.bucket_raw
    assert re.fullmatch(SAFE_KEY.format(batch_id=batch_id), key), key
    assert new_keys == {key}, f"new objects {new_keys}, expected only {key}"
    assert stored_sha256(store, bucket, key) == got.sha256, "the stored object is not the bytes posted"
    if isinstance(expected, Loaded) and expected.stored_as is not None:
        assert key.rsplit("/", 1)[1] == expected.stored_as == row["file_name"]

    batch = wait_terminal(reader, platform, batch_id, timeout=240.0)
    bid = uuid.UUID(batch_id)
    if isinstance(expected, Halted):
        assert batch["status"] == expected.status, batch
        assert batch["error"], batch
        assert expected.error_contains in batch["error"], batch["error"]
        if expected.rejects is not None:
            assert_rejects(rejects_of(db, bid), expected.rejects)
        return

    assert batch["status"] == "loaded", batch
    assert batch["counts"] == {
        "rows_in": expected.rows_in,
        "rows_valid": expected.valid,
        "rows_rejected": expected.rejected,
        "rows_duplicate": expected.duplicate,
    }
    assert_rejects(rejects_of(db, bid), expected.rejects)
    [staged] = db("SELECT count(*) AS n FROM staging.sales WHERE batch_id = $1", bid)
    assert staged["n"] == expected.valid
    if expected.check is not None:
        expected.check(db, bid)


def test_the_corpus_is_deterministic_and_small() -> None:
    for case in CASES:
        first = case.build()
        assert len(first) < 12 * 1024 * 1024, case.name
        if case.name.startswith(("gzip-bomb", "field-10mb")):
            continue  # the expensive ones: built once, their builders take no randomness from outside
        assert case.build() == first, case.name
