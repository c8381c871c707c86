"""Accepting a file: contract check, streamed store with sha256, one batch per content, event after commit."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest import repository
from services.ingest.settings import IngestSettings
from services.ingest.upload import UnreadableHeader, peek_csv_header, store_stream
from shared.batches import publish_committed, record_event
from shared.bus import EventBus
from shared.datasets import CONTRACTS, Dataset
from shared.events import BatchReceived, ObjectRef
from shared.http import ApiError
from shared.logs import batch_context, get_logger
from shared.objectstore import ObjectStore, ObjectTooLarge, incoming_key

log = get_logger(__name__)

CSV_CONTENT_TYPES = frozenset({"text/csv", "application/csv", "text/plain", "application/vnd.ms-excel"})
GENERIC_CONTENT_TYPES = frozenset({"", "application/octet-stream"})
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


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


def detect_format(content_type: str, file_name: str) -> str:
    media = content_type.split(";", 1)[0].strip().lower()
    if media in CSV_CONTENT_TYPES:
        return "csv"
    if media in GENERIC_CONTENT_TYPES and file_name.lower().endswith(".csv"):
        return "csv"
    if media in GENERIC_CONTENT_TYPES and "." not in file_name:
        return "csv"
    raise ApiError(
        415,
        "unsupported_media_type",
        f"unsupported file type {media or 'unknown'!r} for {file_name!r}",
        {"supported": sorted(CSV_CONTENT_TYPES)},
    )


class IngestService:
    def __init__(self, settings: IngestSettings, engine: AsyncEngine, store: ObjectStore, bus: EventBus) -> None:
        self.settings = settings
        self.engine = engine
        self.store = store
        self.bus = bus

    async def accept(self, upload: Upload) -> Accepted:
        started_at = datetime.now(UTC)
        file_format = detect_format(upload.content_type, upload.file_name)
        contract = CONTRACTS[upload.dataset]
        try:
            peeked = await peek_csv_header(upload.chunks)
        except UnreadableHeader as exc:
            raise ApiError(400, "unreadable_file", str(exc)) from exc
        missing = [c for c in contract.required if c not in peeked.header]
        if missing:
            raise ApiError(
                422,
                "contract_mismatch",
                f"the header lacks required columns: {', '.join(missing)}",
                {"missing_columns": missing, "header": peeked.header[:200]},
            )

        bucket = self.settings.bucket_raw
        staging_key = incoming_key(upload.dataset.value)
        try:
            stored = await store_stream(
                self.store,
                bucket,
                staging_key,
                upload.chunks,
                head=peeked.head,
                content_type=upload.content_type or "text/csv",
                max_bytes=self.settings.ingest_max_upload_bytes,
            )
        except ObjectTooLarge as exc:
            raise ApiError(413, "too_large", str(exc), {"limit_bytes": exc.limit}) from exc

        try:
            existing = await self._existing(upload, stored.sha256)
        except ApiError:
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
            file_format=file_format,
        )
        with batch_context(batch_id, dataset=upload.dataset.value):
            async with self.engine.begin() as conn:
                inserted = await repository.insert_batch(
                    conn,
                    batch_id=batch_id,
                    dataset=upload.dataset.value,
                    file_name=upload.file_name,
                    file_format=file_format,
                    content_type=upload.content_type,
                    bucket=bucket,
                    key=final_key,
                    sha256=stored.sha256,
                    size_bytes=stored.size_bytes,
                    idempotency_key=upload.idempotency_key,
                    header=peeked.header,
                    schema_drift=contract.extra_columns(peeked.header),
                )
                if inserted:
                    await record_event(conn, event, stage="ingest", stage_started_at=started_at)
            if not inserted:
                # Another request with the same content committed first: its batch is the batch.
                await asyncio.to_thread(self.store.remove, bucket, final_key)
                winner = await self._existing(upload, stored.sha256)
                if winner is None:
                    raise ApiError(409, "conflict", "a concurrent upload conflicted; retry the request")
                return winner
            await publish_committed(self.engine, self.bus, [event])
            log.info("ingest.accepted", size_bytes=stored.size_bytes, sha256=stored.sha256)
        return Accepted(batch_id, upload.dataset, "received", stored.sha256, stored.size_bytes, created=True)

    async def _existing(self, upload: Upload, sha256: str) -> Accepted | None:
        async with self.engine.connect() as conn:
            if upload.idempotency_key:
                keyed = await repository.find_by_idempotency_key(
                    conn, dataset=upload.dataset.value, key=upload.idempotency_key
                )
                if keyed is not None and keyed.sha256 != sha256:
                    raise ApiError(
                        409,
                        "idempotency_key_reused",
                        "this Idempotency-Key was used for different content",
                        {"batch_id": str(keyed.batch_id)},
                    )
                if keyed is not None:
                    return Accepted(keyed.batch_id, upload.dataset, keyed.status, keyed.sha256, keyed.size_bytes, False)
            same = await repository.find_by_content(conn, dataset=upload.dataset.value, sha256=sha256)
        if same is None:
            return None
        return Accepted(same.batch_id, upload.dataset, same.status, same.sha256, same.size_bytes, created=False)
