"""Streaming an upload into the object store: async chunks in, a sync store writer in a thread.

The header is peeked from the first chunks (so a file that does not match the contract is refused
before anything is stored) and the rest flows through a small bounded queue: memory stays flat.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import queue
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from shared.objectstore import ObjectStore, StoredObject

QUEUE_DEPTH = 8
PUT_TIMEOUT_SECONDS = 0.5
HEADER_PEEK_LIMIT = 1024 * 1024


class UnreadableHeader(Exception):
    pass


@dataclass(frozen=True)
class Peeked:
    header: list[str]
    head: bytes


async def peek_csv_header(chunks: AsyncIterator[bytes]) -> Peeked:
    """Read until the header line is complete; return it with the bytes consumed so far."""
    head = b""
    async for chunk in chunks:
        head += chunk
        if b"\n" in head or len(head) >= HEADER_PEEK_LIMIT:
            break
    if not head.strip():
        raise UnreadableHeader("the file is empty")
    first_line = head.split(b"\n", 1)[0]
    if len(first_line) >= HEADER_PEEK_LIMIT:
        raise UnreadableHeader(f"no header line in the first {HEADER_PEEK_LIMIT} bytes")
    try:
        text = first_line.decode("utf-8-sig").rstrip("\r")
    except UnicodeDecodeError as exc:
        raise UnreadableHeader("the header is not UTF-8") from exc
    header = next(csv.reader(io.StringIO(text)), [])
    return Peeked(header=[name.strip() for name in header], head=head)


class UploadAborted(Exception):
    """The request ended before its body did; the writer discards what it had."""


async def store_stream(
    store: ObjectStore,
    bucket: str,
    key: str,
    chunks: AsyncIterator[bytes],
    *,
    head: bytes,
    content_type: str,
    max_bytes: int,
) -> StoredObject:
    """Write ``head`` then the rest of ``chunks`` to the store; the writer runs in a worker thread.

    If reading the request fails, the writer is told to abort, so no partial object is left.
    """
    pipe: queue.Queue[bytes | UploadAborted | None] = queue.Queue(maxsize=QUEUE_DEPTH)

    def drain() -> Iterator[bytes]:
        while (item := pipe.get()) is not None:
            if isinstance(item, UploadAborted):
                raise item
            yield item

    loop = asyncio.get_running_loop()
    writer = loop.run_in_executor(
        None, lambda: store.put_stream(bucket, key, drain(), content_type=content_type, max_bytes=max_bytes)
    )

    async def send(item: bytes | UploadAborted | None) -> bool:
        """Hand an item to the writer; False once the writer has stopped (it failed or refused)."""
        while not writer.done():
            try:
                await asyncio.to_thread(pipe.put, item, True, PUT_TIMEOUT_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    try:
        if await send(head):
            async for chunk in chunks:
                if not await send(chunk):
                    break
            await send(None)
    except BaseException:
        await send(UploadAborted("the request body ended early"))
        with contextlib.suppress(Exception):
            await writer
        raise
    return await writer
