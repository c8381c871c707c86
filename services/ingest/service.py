"""Accepting a file: contract check, streamed store with sha256, one batch per content, event after commit."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.ingest import repository
from services.ingest.formats import (
    HEAD_LIMIT,
    PARQUET_MAGIC,
    DecompressionBomb,
    FileFormat,
    GzipCheck,
    Header,
    TooDeeplyNested,
    UnreadableFile,
    UnsupportedType,
    Utf8Check,
    csv_header,
    detect_format,
    gunzip_head,
    is_gzip,
    json_header,
    parquet_footer_length,
    parquet_header,
)
from services.ingest.settings import IngestSettings
from services.ingest.upload import read_head, store_stream
from shared import failpoints
from shared.batches import publish_committed, record_event
from shared.bus import EventBus
from shared.datasets import CONTRACTS, Dataset
from shared.events import BatchReceived, ObjectRef
from shared.http import ApiError
from shared.logs import batch_context, get_logger
from shared.objectstore import ObjectStore, ObjectTooLarge, StreamObserver, incoming_key

log = get_logger(__name__)

SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
PARQUET_TAIL = 8
# Far beyond any sales extract, well within what the CSV parser takes (20,480).
MAX_COLUMNS = 10_000


@dataclass(frozen=True)
class Accepted:
    batch_id: uuid.UUID
    dataset: Dataset
    status: str
    sha256: str
    size_bytes: int
    created: bool


@dataclass(frozen=True)
class Upload:
    dataset: Dataset
    file_name: str
    content_type: str
    chunks: AsyncIterator[bytes]
    idempotency_key: str | None
    content_encoding: str = ""


@dataclass(frozen=True)
class Inspected:
    """What the first bytes said: how to read the file and its column names (Parquet: after storing)."""

    format: FileFormat
    gzip: bool
    header: Header | None


def parse_dataset(name: str) -> Dataset:
    try:
        return Dataset(name)
    except ValueError:
        raise ApiError(
            404, "unknown_dataset", f"unknown dataset {name!r}", {"datasets": [d.value for d in Dataset]}
        ) from None


def safe_file_name(name: str | None) -> str:
    """The last path segment with anything unusual replaced: never a path of the client's choosing."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = SAFE_NAME.sub("_", base).strip("._")
    return cleaned[:200] or "upload.csv"


def inspect_head(upload: Upload, head: bytes, *, max_json_depth: int) -> Inspected:
    """Format, compression and (for text formats) the header, from the upload's first bytes."""
    if not head:
        raise ApiError(400, "unreadable_file", "the file is empty")
    gzip = is_gzip(upload.content_encoding, upload.file_name, head)
    try:
        plain = gunzip_head(head) if gzip else head
        fmt = detect_format(upload.content_type, upload.file_name, plain)
        if fmt is FileFormat.parquet:
            if gzip:
                raise UnsupportedType("gzip-compressed Parquet is not read: Parquet compresses its own pages")
            return Inspected(fmt, gzip, None)
        header = csv_header(plain) if fmt is FileFormat.csv else json_header(plain, fmt, max_depth=max_json_depth)
    except UnsupportedType as exc:
        raise ApiError(
            415, "unsupported_media_type", str(exc), {"supported": sorted(f.value for f in FileFormat)}
        ) from exc
    except UnreadableFile as exc:
        raise ApiError(400, "unreadable_file", str(exc)) from exc
    except TooDeeplyNested as exc:
        raise ApiError(422, "too_deeply_nested", str(exc), {"max_depth": exc.limit}) from exc
    return Inspected(fmt, gzip, header)


def check_contract(dataset: Dataset, header: Header) -> None:
    contract = CONTRACTS[dataset]
    if len(header.columns) > MAX_COLUMNS:
        raise ApiError(
            422,
            "too_many_columns",
            f"the file has {len(header.columns)} columns; at most {MAX_COLUMNS} are read",
            {"columns": len(header.columns), "limit": MAX_COLUMNS},
        )
    missing = [c for c in contract.required if c not in header.columns]
    if missing:
        raise ApiError(
            422,
            "contract_mismatch",
            f"the file lacks required columns: {', '.join(missing)}",
            {"missing_columns": missing, "columns": header.columns[:200]},
        )
    duplicated = sorted({c for c in header.columns if header.columns.count(c) > 1 and c in contract.column_names})
    if duplicated:
        raise ApiError(
            422,
            "duplicate_columns",
            f"columns of the contract appear more than once: {', '.join(duplicated)}",
            {"duplicate_columns": duplicated},
        )


class IngestService:
    def __init__(
        self, settings: IngestSettings, engine: AsyncEngine, store: ObjectStore, bus: EventBus, upload_pool: Executor
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.store = store
        self.bus = bus
        # Uploads' pieces only: other blocking calls keep the default executor, so neither waits on the other.
        self.upload_pool = upload_pool

    async def accept(self, upload: Upload) -> Accepted:
        started_at = datetime.now(UTC)
        head = await read_head(upload.chunks, HEAD_LIMIT)
        inspected = inspect_head(upload, head, max_json_depth=self.settings.ingest_max_json_depth)
        if inspected.header is not None:
            check_contract(upload.dataset, inspected.header)

        bucket = self.settings.bucket_raw
        staging_key = incoming_key(upload.dataset.value)
        # Text must be UTF-8 throughout; a gzip stream is checked on what it inflates to.
        text_check = Utf8Check() if inspected.format is not FileFormat.parquet else None
        observer: StreamObserver | None = (
            GzipCheck(
                max_bytes=self.settings.ingest_max_decompressed_bytes,
                max_ratio=self.settings.ingest_max_gzip_ratio,
                ratio_floor=self.settings.ingest_gzip_ratio_floor,
                plain=text_check,
            )
            if inspected.gzip
            else text_check
        )
        try:
            stored = await store_stream(
                self.store,
                bucket,
                staging_key,
                upload.chunks,
                head=head,
                content_type=upload.content_type or "application/octet-stream",
                max_bytes=self.settings.ingest_max_upload_bytes,
                pool=self.upload_pool,
                observer=observer,
            )
        except ObjectTooLarge as exc:
            raise ApiError(413, "too_large", str(exc), {"limit_bytes": exc.limit}) from exc
        except DecompressionBomb as exc:
            raise ApiError(413, "decompression_bomb", str(exc), {"limit_bytes": exc.limit}) from exc
        except UnreadableFile as exc:
            raise ApiError(400, "unreadable_file", str(exc)) from exc

        header = inspected.header
        if header is None:
            try:
                header = await asyncio.to_thread(self._parquet_header, bucket, staging_key, stored.size_bytes)
                check_contract(upload.dataset, header)
            except BaseException:
                await asyncio.to_thread(self.store.remove, bucket, staging_key)
                raise

        try:
            existing = await self._existing(upload, stored.sha256)
        except BaseException:
            # A conflict, or the database gone: nothing refers to the object yet, a retry stores it again.
            await asyncio.to_thread(self.store.remove, bucket, staging_key)
            raise
        if existing is not None:
            await asyncio.to_thread(self.store.remove, bucket, staging_key)
            return existing

        batch_id = uuid.uuid4()
        today = datetime.now(UTC).date().isoformat()
        final_key = f"{upload.dataset.value}/dt={today}/{batch_id}/{upload.file_name}"
        await asyncio.to_thread(self.store.move, bucket, staging_key, final_key)
        event = BatchReceived(
            batch_id=batch_id,
            dataset=upload.dataset,
            object=ObjectRef(bucket=bucket, key=final_key),
            sha256=stored.sha256,
            size_bytes=stored.size_bytes,
            file_format=inspected.format.value,
        )
        with batch_context(batch_id, dataset=upload.dataset.value):
            committing = False
            try:
                async with self.engine.connect() as conn:
                    transaction = await conn.begin()
                    inserted = await repository.insert_batch(
                        conn,
                        batch_id=batch_id,
                        dataset=upload.dataset.value,
                        file_name=upload.file_name,
                        file_format=inspected.format.value,
                        compression="gzip" if inspected.gzip else "none",
                        csv_delimiter=header.delimiter,
                        content_type=upload.content_type,
                        bucket=bucket,
                        key=final_key,
                        sha256=stored.sha256,
                        size_bytes=stored.size_bytes,
                        header=header.columns,
                        schema_drift=CONTRACTS[upload.dataset].extra_columns(header.columns),
                    )
                    if inserted and upload.idempotency_key:
                        inserted = await repository.bind_idempotency_key(
                            conn, dataset=upload.dataset.value, key=upload.idempotency_key, batch_id=batch_id
                        )
                    if inserted:
                        await record_event(conn, event, stage="ingest", stage_started_at=started_at)
                        # A failure from here on is the commit's, which the server may have made: then the row
                        # refers to the object, so it stays.
                        committing = True
                        await transaction.commit()
                    else:
                        await transaction.rollback()
            except BaseException:
                if not committing:
                    await asyncio.to_thread(self.store.remove, bucket, final_key)
                raise
            if not inserted:
                # Another request with the same content (or key) committed first: its batch decides.
                await asyncio.to_thread(self.store.remove, bucket, final_key)
                winner = await self._existing(upload, stored.sha256)
                if winner is None:
                    raise ApiError(409, "conflict", "a concurrent upload conflicted; retry the request")
                return winner
            failpoints.hit(self.settings, "ingest.after_commit")
            await publish_committed(self.engine, self.bus, [event])
            log.info("ingest.accepted", size_bytes=stored.size_bytes, sha256=stored.sha256)
        return Accepted(batch_id, upload.dataset, "received", stored.sha256, stored.size_bytes, created=True)

    def _parquet_header(self, bucket: str, key: str, size: int) -> Header:
        if size < PARQUET_TAIL + len(PARQUET_MAGIC):
            raise ApiError(400, "unreadable_file", "too short for a Parquet file")
        try:
            footer_length = parquet_footer_length(self.store.read_range(bucket, key, size - PARQUET_TAIL, PARQUET_TAIL))
            if footer_length + PARQUET_TAIL + len(PARQUET_MAGIC) > size:
                raise UnreadableFile("the Parquet footer length is larger than the file")
            tail = self.store.read_range(bucket, key, size - PARQUET_TAIL - footer_length, footer_length + PARQUET_TAIL)
            return parquet_header(tail)
        except UnreadableFile as exc:
            raise ApiError(400, "unreadable_file", str(exc)) from exc

    async def _existing(self, upload: Upload, sha256: str) -> Accepted | None:
        """The batch these bytes (or this request's key) already form; a key not yet bound is bound to it."""
        dataset, key = upload.dataset.value, upload.idempotency_key
        async with self.engine.begin() as conn:
            if key:
                keyed = await _by_key(conn, upload.dataset, key, sha256)
                if keyed is not None:
                    return keyed
            same = await repository.find_by_content(conn, dataset=dataset, sha256=sha256)
            if same is None:
                return None
            if key and not await repository.bind_idempotency_key(
                conn, dataset=dataset, key=key, batch_id=same.batch_id
            ):
                # A concurrent request bound the key a moment ago: the batch it names decides.
                return await _by_key(conn, upload.dataset, key, sha256) or _accepted(upload.dataset, same)
        return _accepted(upload.dataset, same)


def _accepted(dataset: Dataset, batch: repository.ExistingBatch) -> Accepted:
    return Accepted(batch.batch_id, dataset, batch.status, batch.sha256, batch.size_bytes, created=False)


async def _by_key(conn: AsyncConnection, dataset: Dataset, key: str, sha256: str) -> Accepted | None:
    """The batch ``key`` is bound to, if any; 409 when it holds other bytes than ``sha256``."""
    keyed = await repository.find_by_idempotency_key(conn, dataset=dataset.value, key=key)
    if keyed is not None and keyed.sha256 != sha256:
        raise ApiError(
            409,
            "idempotency_key_reused",
            "this Idempotency-Key was used for different content",
            {"batch_id": str(keyed.batch_id)},
        )
    return _accepted(dataset, keyed) if keyed is not None else None
