"""The object store: one interface, a local-directory backend (embedded default) and S3 via the minio SDK.

Writes stream: bytes go to the backend chunk by chunk while a sha256 is computed, so memory stays flat
whatever the object's size. A write that fails (or crosses ``max_bytes``) leaves no partial object.
``put_stream`` pulls an iterator; ``open_writer`` is pushed pieces as they arrive, so a caller whose source
is slow (an HTTP client) holds no thread between them.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import mmap
import os
import queue
import shutil
import tempfile
import threading
import urllib.parse
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from minio import Minio
from minio.commonconfig import CopySource
from minio.datatypes import Part
from minio.error import S3Error

from shared.settings import PlatformSettings

CHUNK_SIZE = 1024 * 1024
# Chunks a local write holds between the thread that hashes them and the one that writes them.
WRITE_AHEAD = 8
SYNC_EVERY = 64 * 1024 * 1024
# O_DIRECT writes: the block each write covers, and the alignment of their offsets, lengths and buffer.
DIRECT_BLOCK = 2 * 1024 * 1024
DIRECT_ALIGN = 4096
S3_PART_SIZE = 16 * 1024 * 1024

T = TypeVar("T")


class ObjectStoreError(Exception):
    pass


class ObjectTooLarge(ObjectStoreError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"object exceeds the limit of {limit} bytes")
        self.limit = limit


class ObjectNotFound(ObjectStoreError):
    pass


@dataclass(frozen=True)
class StoredObject:
    bucket: str
    key: str
    size_bytes: int
    sha256: str


class StreamObserver(Protocol):
    """Sees every chunk of a write as it passes; raising from either method aborts the write."""

    def feed(self, chunk: bytes) -> None: ...

    def close(self) -> None: ...


class _Sink(ABC):
    """Where a backend puts an object's bytes while it is written; nothing is visible before ``commit``."""

    @abstractmethod
    def write(self, chunk: bytes) -> None: ...

    @abstractmethod
    def commit(self) -> None: ...

    @abstractmethod
    def abort(self) -> None:
        """Discard what was written (also after a failed ``commit``)."""


class ObjectWriter:
    """An object written piece by piece as its bytes arrive: each call does the work of the piece it is
    given and returns, so no thread waits on the source between pieces.

    ``check`` (the size limit, the sha256, the observer) and ``write`` must each see every piece in order,
    one call at a time; the ``write`` of one piece may run while the next is checked. ``commit`` makes the
    object visible; ``abort`` leaves nothing, and runs while no other call does.
    """

    def __init__(
        self, bucket: str, key: str, sink: _Sink, max_bytes: int | None, observer: StreamObserver | None
    ) -> None:
        self.bucket = bucket
        self.key = key
        self._sink = sink
        self._max = max_bytes
        self._observer = observer
        self._size = 0
        self._digest = hashlib.sha256()

    def check(self, piece: Iterable[bytes]) -> None:
        for chunk in piece:
            self._size += len(chunk)
            if self._max is not None and self._size > self._max:
                raise ObjectTooLarge(self._max)
            self._digest.update(chunk)
            if self._observer is not None and chunk:
                self._observer.feed(chunk)

    def write(self, piece: Iterable[bytes]) -> None:
        for chunk in piece:
            self._sink.write(chunk)

    def commit(self) -> StoredObject:
        if self._observer is not None:
            self._observer.close()
        self._sink.commit()
        return StoredObject(self.bucket, self.key, self._size, self._digest.hexdigest())

    def abort(self) -> None:
        self._sink.abort()


class ObjectStore(ABC):
    """Buckets of immutable objects addressed by key."""

    @abstractmethod
    def ensure_buckets(self, buckets: Iterable[str]) -> None: ...

    @abstractmethod
    def _open_sink(self, bucket: str, key: str, content_type: str) -> _Sink: ...

    @abstractmethod
    def download(self, bucket: str, key: str, path: Path) -> None:
        """Copy an object to a local file (Spark reads local paths)."""

    @abstractmethod
    def open(self, bucket: str, key: str) -> io.BufferedIOBase:
        """A streaming reader over an object."""

    @abstractmethod
    def read_range(self, bucket: str, key: str, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset`` (fewer at the end of the object)."""

    @abstractmethod
    def exists(self, bucket: str, key: str) -> bool: ...

    @abstractmethod
    def remove(self, bucket: str, key: str) -> None: ...

    @abstractmethod
    def move(self, bucket: str, source_key: str, dest_key: str) -> None: ...

    @abstractmethod
    def list_keys(self, bucket: str, prefix: str = "") -> list[str]: ...

    def open_writer(
        self,
        bucket: str,
        key: str,
        *,
        content_type: str = "application/octet-stream",
        max_bytes: int | None = None,
        observer: StreamObserver | None = None,
    ) -> ObjectWriter:
        return ObjectWriter(bucket, key, self._open_sink(bucket, key, content_type), max_bytes, observer)

    def put_stream(
        self,
        bucket: str,
        key: str,
        chunks: Iterable[bytes],
        *,
        content_type: str = "application/octet-stream",
        max_bytes: int | None = None,
        observer: StreamObserver | None = None,
    ) -> StoredObject:
        """Write ``chunks``: checked in this thread, written in a second one (``write_overlapped``)."""
        writer = self.open_writer(bucket, key, content_type=content_type, max_bytes=max_bytes, observer=observer)

        def checked() -> Iterator[list[bytes]]:
            for chunk in chunks:
                piece = [chunk]
                writer.check(piece)
                yield piece

        try:
            write_overlapped(checked(), writer.write)
            return writer.commit()
        except BaseException:
            writer.abort()
            raise

    def put_file(
        self, bucket: str, key: str, path: Path, *, content_type: str = "application/octet-stream"
    ) -> StoredObject:
        with path.open("rb") as fh:
            return self.put_stream(bucket, key, iter(lambda: fh.read(CHUNK_SIZE), b""), content_type=content_type)

    def put_directory(self, bucket: str, prefix: str, directory: Path) -> list[StoredObject]:
        """Upload every file below ``directory`` (a Spark output folder) under ``prefix``, which then holds
        exactly those files.

        Whatever an earlier upload left under the prefix is removed afterwards: Spark names its part files
        per job, so an attempt that uploaded and then died would otherwise stay beside the next one's, and
        a reader of the prefix would see its rows twice.
        """
        folder = f"{prefix.rstrip('/')}/"
        stored = []
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            parts = path.relative_to(directory).parts
            # Spark's bookkeeping (_SUCCESS, _committed_*, .crc) is not data, at any depth.
            if any(part.startswith((".", "_")) for part in parts):
                continue
            stored.append(self.put_file(bucket, folder + "/".join(parts), path))
        current = {s.key for s in stored}
        for key in self.list_keys(bucket, folder):
            if key not in current:
                self.remove(bucket, key)
        return stored


class SyncedFile:
    """A buffered file that syncs what it has written every ``SYNC_EVERY`` bytes: flushing as it goes
    leaves little for the final fsync, which nothing overlaps."""

    def __init__(self, out: io.BufferedIOBase) -> None:
        self._out = out
        self._unsynced = 0

    def write(self, data: bytes) -> None:
        self._out.write(data)
        self._unsynced += len(data)
        if self._unsynced >= SYNC_EVERY:
            self._out.flush()
            os.fdatasync(self._out.fileno())
            self._unsynced = 0

    def finish(self) -> None:
        self._out.flush()


class DirectFile:
    """Writes a file with O_DIRECT through one page-aligned buffer: the bytes go from that buffer to the
    disk, not through the page cache.

    A large buffered write spends most of its CPU getting fresh page-cache pages, and its fsync waits for all
    of it; here the CPU goes to one copy into the buffer and the disk works while the next block fills. The
    last, unaligned piece is written buffered, and so is everything from the first direct write a filesystem
    refuses on.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._direct = True
        self._buffer = mmap.mmap(-1, DIRECT_BLOCK)
        self._view = memoryview(self._buffer)
        self._fill = 0

    @classmethod
    def open(cls, fd: int) -> DirectFile | None:
        """Turn on O_DIRECT for ``fd``; None where the system or the filesystem has no direct I/O."""
        if not hasattr(os, "O_DIRECT"):
            return None
        try:
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_DIRECT)
        except OSError:
            return None
        return cls(fd)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = min(len(view), DIRECT_BLOCK - self._fill)
            self._view[self._fill : self._fill + n] = view[:n]
            self._fill += n
            view = view[n:]
            if self._fill == DIRECT_BLOCK:
                self._write_all(self._view)
                self._fill = 0

    def finish(self) -> None:
        """Write what the buffer holds: its aligned part direct, the rest through the page cache."""
        aligned = self._fill - self._fill % DIRECT_ALIGN
        self._write_all(self._view[:aligned])
        if aligned < self._fill:
            self._stop_direct()
            self._write_all(self._view[aligned : self._fill])
        self._fill = 0

    def close(self) -> None:
        self._view.release()
        self._buffer.close()

    def _stop_direct(self) -> None:
        if self._direct:
            fcntl.fcntl(self._fd, fcntl.F_SETFL, fcntl.fcntl(self._fd, fcntl.F_GETFL) & ~os.O_DIRECT)
            self._direct = False

    def _write_all(self, data: memoryview) -> None:
        while data:
            try:
                written = os.write(self._fd, data)
            except OSError as exc:
                # A filesystem may take the flag and then refuse direct writes (some FUSE and network ones).
                if exc.errno != errno.EINVAL or not self._direct:
                    raise
                self._stop_direct()
                continue
            data = data[written:]


def write_overlapped(chunks: Iterator[T], write: Callable[[T], object]) -> None:
    """Call ``write`` for each of ``chunks`` from a second thread, so that hashing the next chunk and
    writing this one overlap (both release the GIL on large buffers)."""
    pending: queue.Queue[T | None] = queue.Queue(maxsize=WRITE_AHEAD)
    failure: list[BaseException] = []

    def drain() -> None:
        while (chunk := pending.get()) is not None:
            if not failure:
                try:
                    write(chunk)
                except BaseException as exc:
                    failure.append(exc)

    writer = threading.Thread(target=drain, name="objectstore-writer", daemon=True)
    writer.start()
    try:
        for chunk in chunks:
            if failure:
                break
            pending.put(chunk)
    finally:
        pending.put(None)
        writer.join()
    if failure:
        raise failure[0]


def _fsync_directory(path: Path) -> None:
    """Make a rename into ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _LocalSink(_Sink):
    """A temp file beside the target, written with O_DIRECT where the filesystem allows, renamed into place."""

    def __init__(self, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        self._target = target
        self._tmp = Path(tmp_name)
        self._out = os.fdopen(fd, "wb")
        self._direct = DirectFile.open(fd)
        self._file: DirectFile | SyncedFile = self._direct or SyncedFile(self._out)

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)

    def commit(self) -> None:
        self._file.finish()
        # Durable before it is acknowledged: a 202 must survive a power cut.
        os.fsync(self._out.fileno())
        self._close()
        os.replace(self._tmp, self._target)
        _fsync_directory(self._target.parent)

    def abort(self) -> None:
        self._close()
        self._tmp.unlink(missing_ok=True)

    def _close(self) -> None:
        if self._direct is not None:
            self._direct.close()
        self._out.close()


class LocalObjectStore(ObjectStore):
    """Buckets as directories under a root; writes land in a temp file and are renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, bucket: str, key: str) -> Path:
        path = (self.root / bucket / key).resolve()
        if not path.is_relative_to((self.root / bucket).resolve()):
            raise ObjectStoreError(f"key escapes its bucket: {key!r}")
        return path

    def ensure_buckets(self, buckets: Iterable[str]) -> None:
        for bucket in buckets:
            (self.root / bucket).mkdir(parents=True, exist_ok=True)

    def _open_sink(self, bucket: str, key: str, content_type: str) -> _Sink:
        return _LocalSink(self._path(bucket, key))

    def download(self, bucket: str, key: str, path: Path) -> None:
        source = self._path(bucket, key)
        if not source.is_file():
            raise ObjectNotFound(f"{bucket}/{key}")
        shutil.copyfile(source, path)

    def open(self, bucket: str, key: str) -> io.BufferedIOBase:
        source = self._path(bucket, key)
        if not source.is_file():
            raise ObjectNotFound(f"{bucket}/{key}")
        return source.open("rb")

    def read_range(self, bucket: str, key: str, offset: int, length: int) -> bytes:
        with self.open(bucket, key) as fh:
            fh.seek(offset)
            return fh.read(length)

    def exists(self, bucket: str, key: str) -> bool:
        return self._path(bucket, key).is_file()

    def remove(self, bucket: str, key: str) -> None:
        self._path(bucket, key).unlink(missing_ok=True)

    def move(self, bucket: str, source_key: str, dest_key: str) -> None:
        source = self._path(bucket, source_key)
        if not source.is_file():
            raise ObjectNotFound(f"{bucket}/{source_key}")
        target = self._path(bucket, dest_key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        _fsync_directory(target.parent)

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        base = self.root / bucket
        if not base.is_dir():
            return []
        keys = (p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())
        return sorted(k for k in keys if k.startswith(prefix) and not Path(k).name.startswith(".incoming-"))


class _S3Sink(_Sink):
    """A multipart upload, a part sent each time ``S3_PART_SIZE`` bytes have come; a smaller object is one
    plain PUT at commit. The SDK's part calls are private: its public ``put_object`` pulls from a reader,
    which would hold a thread waiting on the source."""

    def __init__(self, client: Minio, bucket: str, key: str, content_type: str) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._content_type = content_type
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[Part] = []

    def write(self, chunk: bytes) -> None:
        self._buffer += chunk
        if len(self._buffer) >= S3_PART_SIZE:
            self._send_part()

    def _send_part(self) -> None:
        if self._upload_id is None:
            self._upload_id = self._client._create_multipart_upload(
                self._bucket, self._key, {"Content-Type": self._content_type}
            )
        number = len(self._parts) + 1
        etag = self._client._upload_part(self._bucket, self._key, bytes(self._buffer), None, self._upload_id, number)
        self._parts.append(Part(number, etag))
        self._buffer.clear()

    def commit(self) -> None:
        if self._upload_id is None:
            self._client.put_object(
                bucket_name=self._bucket,
                object_name=self._key,
                data=io.BytesIO(self._buffer),
                length=len(self._buffer),
                content_type=self._content_type,
            )
            return
        if self._buffer:
            self._send_part()
        self._client._complete_multipart_upload(self._bucket, self._key, self._upload_id, self._parts)

    def abort(self) -> None:
        self._buffer.clear()
        if self._upload_id is not None:
            self._client._abort_multipart_upload(self._bucket, self._key, self._upload_id)


class S3ObjectStore(ObjectStore):
    """S3 (MinIO in production) through the minio SDK; large writes go up as multipart uploads."""

    def __init__(self, client: Minio) -> None:
        self.client = client

    def ensure_buckets(self, buckets: Iterable[str]) -> None:
        for bucket in buckets:
            if not self.client.bucket_exists(bucket_name=bucket):
                self.client.make_bucket(bucket_name=bucket)

    def _open_sink(self, bucket: str, key: str, content_type: str) -> _Sink:
        return _S3Sink(self.client, bucket, key, content_type)

    def download(self, bucket: str, key: str, path: Path) -> None:
        try:
            self.client.fget_object(bucket_name=bucket, object_name=key, file_path=str(path))
        except S3Error as exc:
            if exc.code == "NoSuchKey":
                raise ObjectNotFound(f"{bucket}/{key}") from exc
            raise

    def open(self, bucket: str, key: str) -> io.BufferedIOBase:
        try:
            response = self.client.get_object(bucket_name=bucket, object_name=key)
        except S3Error as exc:
            if exc.code == "NoSuchKey":
                raise ObjectNotFound(f"{bucket}/{key}") from exc
            raise
        return response  # type: ignore[return-value]

    def read_range(self, bucket: str, key: str, offset: int, length: int) -> bytes:
        try:
            response = self.client.get_object(bucket_name=bucket, object_name=key, offset=offset, length=length)
        except S3Error as exc:
            if exc.code == "NoSuchKey":
                raise ObjectNotFound(f"{bucket}/{key}") from exc
            raise
        try:
            return bytes(response.read())
        finally:
            response.close()
            response.release_conn()

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self.client.stat_object(bucket_name=bucket, object_name=key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def remove(self, bucket: str, key: str) -> None:
        self.client.remove_object(bucket_name=bucket, object_name=key)

    def move(self, bucket: str, source_key: str, dest_key: str) -> None:
        try:
            self.client.copy_object(
                bucket_name=bucket,
                object_name=dest_key,
                source=CopySource(bucket_name=bucket, object_name=source_key),
            )
        except S3Error as exc:
            if exc.code == "NoSuchKey":
                raise ObjectNotFound(f"{bucket}/{source_key}") from exc
            raise
        self.client.remove_object(bucket_name=bucket, object_name=source_key)

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        objects = self.client.list_objects(bucket_name=bucket, prefix=prefix, recursive=True)
        return sorted(o.object_name for o in objects if o.object_name)


def create_object_store(settings: PlatformSettings) -> ObjectStore:
    """``file:///dir`` for the embedded store; ``s3://host:port`` (``s3+https://`` for TLS) for S3."""
    url = urllib.parse.urlsplit(settings.object_store_url)
    if url.scheme == "file":
        return LocalObjectStore(Path(urllib.parse.unquote(url.path)))
    if url.scheme in ("s3", "s3+http", "s3+https", "http", "https"):
        client = Minio(
            url.netloc,
            access_key=settings.object_store_access_key,
            secret_key=settings.object_store_secret_key.get_secret_value(),
            region=settings.object_store_region,
            secure=url.scheme in ("s3+https", "https"),
        )
        return S3ObjectStore(client)
    raise ValueError(f"unsupported object store URL: {settings.object_store_url}")


def all_buckets(settings: PlatformSettings) -> list[str]:
    return [
        settings.bucket_raw,
        settings.bucket_processed,
        settings.bucket_analytics,
        settings.bucket_backups,
    ]


def incoming_key(dataset: str) -> str:
    """Where an upload lands before its batch exists: outside every dataset's prefix."""
    return f"_incoming/{dataset}/{uuid.uuid4()}"
