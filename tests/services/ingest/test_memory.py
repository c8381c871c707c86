"""The ingest process serves stream-sized buffers from its heap and keeps them there (shared/memory.py).

Checked with glibc's own counters, in a fresh process: a buffer served by a mapping of its own shows in
``hblks``; one freed back into the heap shows in ``fordblks``.
"""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys

import pytest

PROBE = """
import ctypes, json, sys

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "app":
    from services.ingest.app import create_app
    create_app()
else:
    import services.ingest.app
size = int(sys.argv[2])
before = libc.mallinfo2()
buffer = b"x" * size
held = libc.mallinfo2()
del buffer
after = libc.mallinfo2()
print(json.dumps({"mapped": held.hblks - before.hblks, "kept": after.fordblks - held.fordblks}))
"""

# A freshly started process shows the settings on a part-sized buffer. (A 256 KiB socket read would be
# served from the heap there anyway, since the imports' own frees have raised glibc's adaptive threshold;
# it is under a long upload's churn that reads end up mapped, which bench/ingest_upload.py measures.)
S3_PART = 16 * 1024 * 1024 + 1


def probe(mode: str, size: int) -> dict[str, int]:
    done = subprocess.run([sys.executable, "-c", PROBE, mode, str(size)], capture_output=True, text=True, check=True)
    result: dict[str, int] = json.loads(done.stdout)
    return result


pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not hasattr(ctypes.CDLL(None), "mallinfo2"),
    reason="glibc heap settings",
)


def test_stream_buffers_come_from_the_heap_and_stay_there() -> None:
    assert probe("app", S3_PART) == {"mapped": 0, "kept": pytest.approx(S3_PART, abs=4096)}


def test_without_the_settings_a_part_sized_buffer_is_mapped_and_unmapped() -> None:
    # What the settings change: the same allocation, in a process that only imported the app.
    assert probe("imports", S3_PART) == {"mapped": 1, "kept": 0}
