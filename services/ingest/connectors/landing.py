"""The landing connector: objects dropped under ``landing/<dataset>/`` in the raw bucket, swept into batches."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.ingest.connectors.locks import try_lock
from services.ingest.service import Accepted, IngestService, Upload, parse_dataset, safe_file_name
from shared.datasets import Dataset
from shared.http import ApiError
from shared.logs import get_logger
from shared.objectstore import CHUNK_SIZE, ObjectNotFound, ObjectStore

log = get_logger(__name__)

LANDING_ROOT = "landing/"
DONE = "_done"
REJECTED = "_rejected"
ERROR_SUFFIX = ".error.json"


@dataclass(frozen=True)
class SweepResult:
    """What a sweep did with one object of the landing prefix.

    ``outcome``: ``ingested`` (a new batch), ``duplicate`` (the content was already a batch: that batch),
    ``rejected`` (moved to ``_rejected`` with its error beside it) or ``gone`` (removed since listed).
    """

    key: str
    dataset: str | None
    outcome: str
    moved_to: str | None = None
    batch: Accepted | None = None
    error: dict[str, Any] | None = None


def _landing_prefix(prefix: str) -> str:
    if prefix == LANDING_ROOT.rstrip("/"):
        return LANDING_ROOT
    if not prefix.startswith(LANDING_ROOT) or ".." in prefix.split("/"):
        raise ApiError(400, "invalid_prefix", f"a sweep prefix lies under {LANDING_ROOT!r}", {"prefix": prefix[:300]})
    return prefix


def _free_key(store: ObjectStore, bucket: str, key: str) -> str:
    """``key``, or a sibling name when an object (or its error) already sits there: nothing is overwritten."""
    candidate = key
    while store.exists(bucket, candidate) or store.exists(bucket, candidate + ERROR_SUFFIX):
        folder, _, name = key.rpartition("/")
        stem, dot, extension = name.partition(".")
        candidate = f"{folder}/{stem}-{uuid.uuid4().hex[:8]}{dot}{extension}"
    return candidate


async def _object_chunks(reader: Any) -> AsyncGenerator[bytes, None]:
    while chunk := await asyncio.to_thread(reader.read, CHUNK_SIZE):
        yield bytes(chunk)


def _close_reader(reader: Any) -> None:
    reader.close()
    release = getattr(reader, "release_conn", None)
    if release is not None:
        release()


async def _ingest_object(service: IngestService, dataset: Dataset, key: str) -> Accepted:
    bucket = service.settings.bucket_raw
    reader = await asyncio.to_thread(service.store.open, bucket, key)
    chunks = _object_chunks(reader)
    try:
        # No declared type: the service decides by the name, then the bytes (as for any upload).
        upload = Upload(dataset, safe_file_name(key), "", chunks, idempotency_key=None)
        return await service.accept(upload)
    finally:
        await chunks.aclose()
        await asyncio.to_thread(_close_reader, reader)


async def _settle(service: IngestService, key: str, area: str, relative: str, error: dict[str, Any] | None) -> str:
    """Move ``key`` under ``landing/<area>/``; a rejected object gets its error as JSON beside it first."""
    store, bucket = service.store, service.settings.bucket_raw
    destination = await asyncio.to_thread(_free_key, store, bucket, f"{LANDING_ROOT}{area}/{relative}")
    if error is not None:
        body = json.dumps(
            {"key": key, "rejected_at": datetime.now(UTC).isoformat(), "error": error}, indent=2, default=str
        ).encode()
        await asyncio.to_thread(
            store.put_stream, bucket, destination + ERROR_SUFFIX, [body], content_type="application/json"
        )
    await asyncio.to_thread(store.move, bucket, key, destination)
    return destination


async def _sweep_one(service: IngestService, key: str, relative: str) -> SweepResult:
    folder, _, rest = relative.partition("/")
    dataset = folder if rest else None
    try:
        if dataset is None:
            raise ApiError(
                404,
                "unknown_dataset",
                f"objects land in {LANDING_ROOT}<dataset>/",
                {"datasets": [d.value for d in Dataset]},
            )
        accepted = await _ingest_object(service, parse_dataset(dataset), key)
    except ObjectNotFound:
        return SweepResult(key, dataset, "gone")
    except ApiError as exc:
        if exc.status == 409 or exc.status >= 500:
            raise  # a conflict to retry or a fault of ours: not the file's, so it stays for the next sweep
        error = {"status": exc.status, "code": exc.code, "message": exc.message, "details": exc.details}
        moved_to = await _settle(service, key, REJECTED, relative, error)
        log.warning("connector.landing.rejected", key=key, moved_to=moved_to, code=exc.code)
        return SweepResult(key, dataset, "rejected", moved_to, error=error)
    try:
        moved_to = await _settle(service, key, DONE, relative, None)
    except ObjectNotFound:
        return SweepResult(key, dataset, "gone", batch=accepted)
    log.info("connector.landing.ingested", key=key, moved_to=moved_to, batch_id=str(accepted.batch_id))
    return SweepResult(key, dataset, "ingested" if accepted.created else "duplicate", moved_to, batch=accepted)


def _settled(relative: str) -> bool:
    return relative.split("/", 1)[0] in (DONE, REJECTED)


async def sweep_landing(service: IngestService, *, prefix: str = LANDING_ROOT) -> list[SweepResult]:
    """Ingest every object under ``prefix`` (within ``landing/``), one object at a time.

    ``landing/<dataset>/<path>`` is accepted as a file of ``<dataset>`` and moved to ``landing/_done/<dataset>/
    <path>``; an object the service refuses (or outside a known dataset folder) is moved to ``landing/_rejected/
    ...`` with ``<name>.error.json`` beside it. Nothing is deleted or overwritten. A failure that is not the
    file's (the database or the store) ends the sweep and leaves the object where it was, for the next sweep.
    One sweep runs at a time (a second gets 409).
    """
    prefix = _landing_prefix(prefix)
    async with service.engine.begin() as lock:
        if not await try_lock(lock, "landing"):
            raise ApiError(409, "sweep_in_progress", "a sweep of the landing prefix is running")
        keys = await asyncio.to_thread(service.store.list_keys, service.settings.bucket_raw, prefix)
        results = []
        for key in keys:
            relative = key[len(LANDING_ROOT) :]
            if key.endswith("/") or _settled(relative):
                continue
            results.append(await _sweep_one(service, key, relative))
    return results
