"""The object store against both backends: a local directory and S3 (moto's server through the minio SDK)."""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import io
import mmap
import os
import tracemalloc
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shared.objectstore import (
    CHUNK_SIZE,
    DIRECT_ALIGN,
    DIRECT_BLOCK,
    S3_PART_SIZE,
    SYNC_EVERY,
    DirectFile,
    LocalObjectStore,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    ObjectTooLarge,
    S3ObjectStore,
    StoredObject,
    SyncedFile,
    create_object_store,
    write_overlapped,
)
from shared.settings import PlatformSettings
from tests.conftest import MOTO_ACCESS_KEY, MOTO_SECRET_KEY

MiB = 1024 * 1024


@dataclass
class Target:
    store: ObjectStore
    bucket: str
    kind: str


@pytest.fixture(params=["local", "s3"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    if request.param == "local":
        store: ObjectStore = LocalObjectStore(tmp_path / "objects")
        bucket = "bucket"
    else:
        moto_server: str = request.getfixturevalue("moto_server")
        store = create_object_store(
            PlatformSettings(
                object_store_url=moto_server,
                object_store_access_key=MOTO_ACCESS_KEY,
                object_store_secret_key=MOTO_SECRET_KEY,
            )
        )
        assert isinstance(store, S3ObjectStore)
        bucket = f"test-{uuid.uuid4().hex[:16]}"
    store.ensure_buckets([bucket])
    return Target(store, bucket, request.param)


def pattern_chunks(total: int, chunk: int = CHUNK_SIZE, seed: int = 0) -> Iterator[bytes]:
    """Deterministic chunks, each different (a byte pattern per chunk index), produced one at a time."""
    sent, index = 0, 0
    while sent < total:
        size = min(chunk, total - sent)
        block = hashlib.sha256(f"{seed}:{index}".encode()).digest()
        yield (block * (size // len(block) + 1))[:size]
        sent += size
        index += 1


def digest(chunks: Iterable[bytes]) -> tuple[int, str]:
    h, size = hashlib.sha256(), 0
    for chunk in chunks:
        h.update(chunk)
        size += len(chunk)
    return size, h.hexdigest()


def read_all(store: ObjectStore, bucket: str, key: str) -> bytes:
    fh = store.open(bucket, key)
    try:
        return fh.read()
    finally:
        fh.close()
        release = getattr(fh, "release_conn", None)
        if release is not None:
            release()


def stream_digest(store: ObjectStore, bucket: str, key: str) -> tuple[int, str]:
    fh = store.open(bucket, key)
    try:
        return digest(iter(lambda: fh.read(CHUNK_SIZE), b""))
    finally:
        fh.close()
        release = getattr(fh, "release_conn", None)
        if release is not None:
            release()


def leftovers(target: Target) -> list[str]:
    """Everything in the bucket, including the local backend's hidden temp files."""
    if isinstance(target.store, LocalObjectStore):
        base = target.store.root / target.bucket
        return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())
    return target.store.list_keys(target.bucket)


# --- writes and reads ----------------------------------------------------------------------------------


def test_put_stream_of_many_chunks(target: Target, tmp_path: Path) -> None:
    chunks = [bytes([i]) * (1000 + i * 37) for i in range(50)]
    chunks.insert(10, b"")  # empty chunks are harmless
    data = b"".join(chunks)

    stored = target.store.put_stream(target.bucket, "sales/a.csv", iter(chunks))

    assert stored == StoredObject(target.bucket, "sales/a.csv", len(data), hashlib.sha256(data).hexdigest())
    assert read_all(target.store, target.bucket, "sales/a.csv") == data
    out = tmp_path / "downloaded.csv"
    target.store.download(target.bucket, "sales/a.csv", out)
    assert out.read_bytes() == data
    assert leftovers(target) == ["sales/a.csv"]


def test_put_stream_of_nothing_stores_an_empty_object(target: Target) -> None:
    stored = target.store.put_stream(target.bucket, "empty", iter([]))
    assert (stored.size_bytes, stored.sha256) == (0, hashlib.sha256(b"").hexdigest())
    assert target.store.exists(target.bucket, "empty")
    assert read_all(target.store, target.bucket, "empty") == b""


def test_put_stream_bigger_than_an_s3_part(target: Target, tmp_path: Path) -> None:
    total = S3_PART_SIZE + 4 * MiB + 12345  # two parts on S3, a ragged tail
    # Chunks that do not divide the part size exercise the re-chunking in the reader.
    chunk = CHUNK_SIZE - 4097

    stored = target.store.put_stream(target.bucket, "big/object.bin", pattern_chunks(total, chunk))

    expected = digest(pattern_chunks(total, chunk))
    assert (stored.size_bytes, stored.sha256) == expected
    assert stream_digest(target.store, target.bucket, "big/object.bin") == expected
    out = tmp_path / "big.bin"
    target.store.download(target.bucket, "big/object.bin", out)
    with out.open("rb") as fh:
        assert digest(iter(lambda: fh.read(CHUNK_SIZE), b"")) == expected


def test_put_file_reads_the_whole_file(target: Target, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    data = b"".join(pattern_chunks(3 * CHUNK_SIZE + 5))
    source.write_bytes(data)
    stored = target.store.put_file(target.bucket, "f/source.bin", source)
    assert (stored.size_bytes, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert read_all(target.store, target.bucket, "f/source.bin") == data


# --- failed writes leave nothing ------------------------------------------------------------------------


def test_crossing_max_bytes_raises_and_leaves_nothing(target: Target) -> None:
    chunks = [b"x" * 1000] * 10
    with pytest.raises(ObjectTooLarge) as info:
        target.store.put_stream(target.bucket, "up/too-big.csv", iter(chunks), max_bytes=5500)
    assert info.value.limit == 5500
    assert not target.store.exists(target.bucket, "up/too-big.csv")
    assert target.store.list_keys(target.bucket, "up/") == []
    assert leftovers(target) == []


def test_max_bytes_is_inclusive(target: Target) -> None:
    stored = target.store.put_stream(target.bucket, "exact", iter([b"x" * 1000] * 5), max_bytes=5000)
    assert stored.size_bytes == 5000
    with pytest.raises(ObjectTooLarge):
        target.store.put_stream(target.bucket, "one-more", iter([b"x" * 1000] * 5 + [b"y"]), max_bytes=5000)
    assert target.store.list_keys(target.bucket) == ["exact"]


class Boom(RuntimeError):
    pass


def failing_chunks(good: int) -> Iterator[bytes]:
    for i in range(good):
        yield bytes([65 + i]) * 4096
    raise Boom("client went away")


def test_iterator_failing_midway_propagates_and_leaves_nothing(target: Target) -> None:
    with pytest.raises(Boom, match="client went away"):
        target.store.put_stream(target.bucket, "up/partial.csv", failing_chunks(5))
    assert not target.store.exists(target.bucket, "up/partial.csv")
    assert target.store.list_keys(target.bucket, "up/") == []
    assert leftovers(target) == []


def test_failed_overwrite_keeps_the_previous_object(target: Target) -> None:
    target.store.put_stream(target.bucket, "k", iter([b"original"]))
    with pytest.raises(Boom):
        target.store.put_stream(target.bucket, "k", failing_chunks(3))
    with pytest.raises(ObjectTooLarge):
        target.store.put_stream(target.bucket, "k", iter([b"z" * 100]), max_bytes=10)
    assert read_all(target.store, target.bucket, "k") == b"original"
    assert leftovers(target) == ["k"]


# --- move, remove, exists, list ------------------------------------------------------------------------


def test_move(target: Target) -> None:
    data = b"".join(pattern_chunks(50_000, 7_000))
    target.store.put_stream(target.bucket, "_incoming/sales/123", iter([data]))
    target.store.move(target.bucket, "_incoming/sales/123", "sales/batch_id=1/sales.csv")
    assert not target.store.exists(target.bucket, "_incoming/sales/123")
    assert target.store.exists(target.bucket, "sales/batch_id=1/sales.csv")
    assert read_all(target.store, target.bucket, "sales/batch_id=1/sales.csv") == data
    assert target.store.list_keys(target.bucket) == ["sales/batch_id=1/sales.csv"]


def test_remove(target: Target) -> None:
    target.store.put_stream(target.bucket, "a/1", iter([b"1"]))
    target.store.put_stream(target.bucket, "a/2", iter([b"2"]))
    target.store.remove(target.bucket, "a/1")
    assert not target.store.exists(target.bucket, "a/1")
    assert target.store.list_keys(target.bucket) == ["a/2"]
    target.store.remove(target.bucket, "a/1")  # removing again is a no-op (redelivered tasks)
    assert target.store.list_keys(target.bucket) == ["a/2"]


def test_exists(target: Target) -> None:
    assert not target.store.exists(target.bucket, "x/y.csv")
    target.store.put_stream(target.bucket, "x/y.csv", iter([b"y"]))
    assert target.store.exists(target.bucket, "x/y.csv")
    assert not target.store.exists(target.bucket, "x/y")
    assert not target.store.exists(target.bucket, "x/y.csv.bak")


def test_list_keys_with_a_prefix(target: Target) -> None:
    keys = ["a/2", "a/1", "a/sub/3", "ab/4", "b/5"]
    for key in keys:
        target.store.put_stream(target.bucket, key, iter([key.encode()]))
    assert target.store.list_keys(target.bucket) == sorted(keys)
    assert target.store.list_keys(target.bucket, "a/") == ["a/1", "a/2", "a/sub/3"]
    assert target.store.list_keys(target.bucket, "a") == ["a/1", "a/2", "a/sub/3", "ab/4"]
    assert target.store.list_keys(target.bucket, "a/sub/") == ["a/sub/3"]
    assert target.store.list_keys(target.bucket, "c") == []


# --- put_directory -------------------------------------------------------------------------------------


def spark_output(directory: Path) -> dict[str, bytes]:
    """A Spark-like output folder; returns the data files that should be uploaded."""
    data = {
        "part-00000-abc.snappy.parquet": b"PAR1 zero",
        "part-00001-abc.snappy.parquet": b"PAR1 one",
        "nested/part-00002-abc.snappy.parquet": b"PAR1 two",
    }
    bookkeeping = {
        "_SUCCESS": b"",
        "_committed_123": b"{}",
        ".part-00000-abc.snappy.parquet.crc": b"crc0",
        ".part-00001-abc.snappy.parquet.crc": b"crc1",
        "nested/.part-00002-abc.snappy.parquet.crc": b"crc2",
        "_temporary/0/task/part-00003.parquet": b"half-written",
        ".hidden/part-00004.parquet": b"hidden",
    }
    for relative, content in {**data, **bookkeeping}.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return data


def test_put_directory_skips_bookkeeping_files(target: Target, tmp_path: Path) -> None:
    out = tmp_path / "parquet"
    data = spark_output(out)

    stored = target.store.put_directory(target.bucket, "sales/batch_id=7/", out)

    expected = sorted(f"sales/batch_id=7/{name}" for name in data)
    assert sorted(s.key for s in stored) == expected
    assert target.store.list_keys(target.bucket) == expected
    for s in stored:
        content = data[s.key.removeprefix("sales/batch_id=7/")]
        assert (s.size_bytes, s.sha256) == (len(content), hashlib.sha256(content).hexdigest())
        assert read_all(target.store, target.bucket, s.key) == content


def test_put_directory_skips_underscore_files_in_subfolders(tmp_path: Path) -> None:
    out = tmp_path / "parquet"
    (out / "date=2026-01-01").mkdir(parents=True)
    (out / "date=2026-01-01" / "part-0.parquet").write_bytes(b"PAR1")
    (out / "date=2026-01-01" / "_SUCCESS").write_bytes(b"")
    store = LocalObjectStore(tmp_path / "objects")
    store.ensure_buckets(["b"])
    store.put_directory("b", "p", out)
    assert store.list_keys("b") == ["p/date=2026-01-01/part-0.parquet"]


def test_put_directory_replaces_what_an_earlier_upload_left(target: Target, tmp_path: Path) -> None:
    # Spark names part files per job: a first attempt that uploaded and then died left other names.
    first = tmp_path / "first"
    spark_output(first)
    target.store.put_directory(target.bucket, "sales/batch_id=7", first)
    target.store.put_stream(target.bucket, "sales/batch_id=70/part-00000-x.snappy.parquet", iter([b"PAR1 other"]))
    second = tmp_path / "second"
    (second / "nested").mkdir(parents=True)
    (second / "part-00000-def.snappy.parquet").write_bytes(b"PAR1 again")
    (second / "nested" / "part-00001-def.snappy.parquet").write_bytes(b"PAR1 again, nested")

    target.store.put_directory(target.bucket, "sales/batch_id=7/", second)

    assert target.store.list_keys(target.bucket) == [
        "sales/batch_id=7/nested/part-00001-def.snappy.parquet",
        "sales/batch_id=7/part-00000-def.snappy.parquet",
        "sales/batch_id=70/part-00000-x.snappy.parquet",
    ]


# --- missing objects and bad keys ----------------------------------------------------------------------


def test_missing_key_raises_object_not_found(target: Target, tmp_path: Path) -> None:
    target.store.put_stream(target.bucket, "present", iter([b"here"]))
    with pytest.raises(ObjectNotFound):
        target.store.open(target.bucket, "absent")
    with pytest.raises(ObjectNotFound):
        target.store.download(target.bucket, "absent", tmp_path / "absent")
    assert not (tmp_path / "absent").exists()
    with pytest.raises(ObjectNotFound):
        target.store.move(target.bucket, "absent", "elsewhere")
    assert not target.store.exists(target.bucket, "elsewhere")


@pytest.mark.parametrize("key", ["../escaped", "a/../../escaped", "../bucket-sibling/x", "/etc/passwd"])
def test_local_key_escaping_its_bucket_is_refused(tmp_path: Path, key: str) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    store.ensure_buckets(["bucket", "bucket-sibling"])
    (tmp_path / "objects" / "bucket-sibling" / "x").write_bytes(b"secret")
    with pytest.raises(ObjectStoreError):
        store.put_stream("bucket", key, iter([b"evil"]))
    for call in (
        lambda: store.open("bucket", key),
        lambda: store.download("bucket", key, tmp_path / "out"),
        lambda: store.exists("bucket", key),
        lambda: store.remove("bucket", key),
        lambda: store.move("bucket", key, "inside"),
        lambda: store.move("bucket", "inside", key),
    ):
        with pytest.raises(ObjectStoreError):
            call()
    assert not (tmp_path / "escaped").exists()
    assert not (tmp_path / "objects" / "escaped").exists()
    assert (tmp_path / "objects" / "bucket-sibling" / "x").read_bytes() == b"secret"


def test_local_key_with_dotdot_inside_the_bucket_is_allowed(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    store.ensure_buckets(["bucket"])
    store.put_stream("bucket", "a/../b", iter([b"ok"]))
    assert store.list_keys("bucket") == ["b"]


# --- construction --------------------------------------------------------------------------------------


def test_create_object_store_from_file_url(tmp_path: Path) -> None:
    store = create_object_store(PlatformSettings(object_store_url=f"file://{tmp_path}/my%20objects"))
    assert isinstance(store, LocalObjectStore)
    assert store.root == tmp_path / "my objects"


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:21", "gs://bucket", "/just/a/path", "minio://host:9000"])
def test_create_object_store_rejects_unknown_schemes(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported object store URL"):
        create_object_store(PlatformSettings(object_store_url=url))


# --- direct writes (local) -----------------------------------------------------------------------------


def filesystem_type(path: Path) -> str:
    """The type of the filesystem ``path`` is on, from the longest mount point above it."""
    best, kind = "", ""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        mount_point, fs_type = line.split()[1:3]
        if (path.as_posix() + "/").startswith(mount_point.rstrip("/") + "/") and len(mount_point) > len(best):
            best, kind = mount_point, fs_type
    return kind


def cached_pages(path: Path) -> tuple[int, int]:
    """(pages of ``path`` in the page cache, pages in all), by mincore(2) over a mapping of the file."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    pages = (path.stat().st_size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    with path.open("rb") as fh:
        # A private writable mapping, only so that ctypes can take its address; nothing touches it.
        mapping = mmap.mmap(fh.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    try:
        start = ctypes.c_char.from_buffer(mapping)
        vector = ctypes.create_string_buffer(pages)
        try:
            assert libc.mincore(ctypes.addressof(start), pages * mmap.PAGESIZE, vector) == 0, ctypes.get_errno()
        finally:
            del start
        return sum(byte & 1 for byte in vector.raw), pages
    finally:
        mapping.close()


@pytest.mark.parametrize(
    "size",
    [
        1,
        DIRECT_ALIGN - 1,
        DIRECT_ALIGN,
        DIRECT_ALIGN + 1,
        DIRECT_BLOCK - 1,
        DIRECT_BLOCK,
        DIRECT_BLOCK + DIRECT_ALIGN + 7,
        3 * DIRECT_BLOCK,
    ],
)
def test_local_writes_of_every_size_around_the_direct_blocks(tmp_path: Path, size: int) -> None:
    """Whole blocks go direct, the unaligned tail buffered: every byte lands, in order, whatever the
    chunking."""
    store = LocalObjectStore(tmp_path / "objects")
    store.ensure_buckets(["bucket"])

    chunks = list(pattern_chunks(size, chunk=65_537))

    stored = store.put_stream("bucket", "obj", iter(chunks))

    assert (stored.size_bytes, stored.sha256) == digest(chunks)
    assert (tmp_path / "objects" / "bucket" / "obj").read_bytes() == b"".join(chunks)


def test_a_large_local_write_bypasses_the_page_cache(tmp_path: Path) -> None:
    """The whole blocks of a local write go to the disk directly: of a 16 MiB object, only the unaligned
    tail is left in the page cache (a buffered write leaves all of it there)."""
    if filesystem_type(tmp_path) in {"tmpfs", "ramfs"}:
        pytest.skip("a memory filesystem keeps every page in the page cache")
    store = LocalObjectStore(tmp_path / "objects")
    store.ensure_buckets(["bucket"])
    size = 16 * MiB + 100

    store.put_stream("bucket", "big.bin", pattern_chunks(size))

    cached, pages = cached_pages(tmp_path / "objects" / "bucket" / "big.bin")
    assert pages == size // mmap.PAGESIZE + 1
    assert cached <= 1, f"{cached} of {pages} pages are in the page cache"


def test_a_filesystem_refusing_direct_writes_gets_buffered_ones(tmp_path: Path) -> None:
    """A direct write the filesystem refuses (here: at an unaligned offset, as some filesystems refuse
    every one) is written buffered instead, with nothing lost."""
    path = tmp_path / "file.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        os.write(fd, b"0123456789")
        direct = DirectFile.open(fd)
        if direct is None:
            pytest.skip("this filesystem has no direct I/O")
        try:
            for chunk in pattern_chunks(2 * DIRECT_BLOCK + 5):
                direct.write(chunk)
            direct.finish()
        finally:
            direct.close()
    finally:
        os.close(fd)
    assert path.read_bytes() == b"0123456789" + b"".join(pattern_chunks(2 * DIRECT_BLOCK + 5))


def test_the_buffered_writer_of_filesystems_without_direct_io(tmp_path: Path) -> None:
    """Where O_DIRECT is not to be had, the file is written through the page cache, synced as it goes."""
    path = tmp_path / "file.bin"
    chunks = list(pattern_chunks(SYNC_EVERY + 3 * MiB + 1))
    with path.open("wb") as out:
        synced = SyncedFile(out)
        for chunk in chunks:
            synced.write(chunk)
        synced.finish()
        assert path.read_bytes() == b"".join(chunks)


# --- memory --------------------------------------------------------------------------------------------


def test_local_put_stream_memory_stays_flat(tmp_path: Path) -> None:
    total = 200 * MiB
    store = LocalObjectStore(tmp_path / "objects")
    store.ensure_buckets(["bucket"])

    def chunks() -> Iterator[bytes]:
        for i in range(total // MiB):
            yield bytes([i % 251]) * MiB

    tracemalloc.start()
    try:
        stored = store.put_stream("bucket", "huge.bin", chunks())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 16 * MiB, f"put_stream peaked at {peak / MiB:.1f} MiB of Python allocations"
    assert (stored.size_bytes, stored.sha256) == digest(chunks())
    assert (tmp_path / "objects" / "bucket" / "huge.bin").stat().st_size == total
    with contextlib.suppress(FileNotFoundError):
        (tmp_path / "objects" / "bucket" / "huge.bin").unlink()


def test_a_failed_disk_write_stops_the_stream_and_surfaces_the_error(tmp_path: Path) -> None:
    produced: list[int] = []

    def chunks() -> Iterator[bytes]:
        for i in range(1000):
            produced.append(i)
            yield b"x" * 1024

    class FailingFile(io.BytesIO):
        def write(self, data: Any) -> int:
            if self.tell() >= 4096:
                raise OSError(28, "No space left on device")
            return super().write(data)

    with pytest.raises(OSError, match="No space left"):
        write_overlapped(chunks(), FailingFile().write)
    assert len(produced) < 1000, "the producer stops once the writer has failed"


def test_a_write_failing_after_a_whole_s3_part_leaves_nothing(target: Target) -> None:
    def chunks() -> Iterator[bytes]:
        yield from pattern_chunks(S3_PART_SIZE + MiB)
        raise RuntimeError("the source broke")

    with pytest.raises(RuntimeError, match="the source broke"):
        target.store.put_stream(target.bucket, "broken/after-a-part.bin", chunks())
    assert not target.store.exists(target.bucket, "broken/after-a-part.bin")
    assert target.store.list_keys(target.bucket) == []


def test_a_pushed_writer_stores_its_pieces_only_once_committed(target: Target) -> None:
    writer = target.store.open_writer(target.bucket, "pushed.csv", max_bytes=10)
    for piece in ([b"ab", b"c"], [b"def"]):
        writer.check(piece)
        writer.write(piece)
    assert not target.store.exists(target.bucket, "pushed.csv")
    assert writer.commit() == StoredObject(target.bucket, "pushed.csv", 6, hashlib.sha256(b"abcdef").hexdigest())
    assert read_all(target.store, target.bucket, "pushed.csv") == b"abcdef"

    refused = target.store.open_writer(target.bucket, "refused.csv", max_bytes=10)
    with pytest.raises(ObjectTooLarge):
        refused.check([b"x" * 11])
    refused.abort()
    assert target.store.list_keys(target.bucket) == ["pushed.csv"]
