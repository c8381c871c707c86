"""Heap settings for a process that streams large bodies through Python buffers.

glibc serves an allocation above its mmap threshold with a mapping of its own and unmaps it on free. The
threshold adapts to the sizes freed, but a socket read allocates 256 KiB and then shrinks the buffer to what
arrived, so the threshold settles below 256 KiB and every read maps fresh memory: the kernel zeroes it, faults
it in page by page and unmaps it again. Served from the heap, the same memory is reused read after read.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Above every buffer an upload passes around (256 KiB socket reads, 1 MiB heads, 16 MiB S3 parts) …
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
# … and free memory kept at the top of the heap for the next ones, returned to the system beyond this.
TRIM_THRESHOLD_BYTES = 128 * 1024 * 1024


def keep_stream_buffers_in_heap() -> bool:
    """Serve stream-sized buffers from the heap and keep them there once freed; False where the C library
    has no such settings (anything but glibc), which changes speed, not behaviour."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # musl has the symbol but ignores it (returns 0), as glibc does a setting it refuses.
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
