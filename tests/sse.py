"""Reading a server-sent event stream in tests."""

from __future__ import annotations

from collections.abc import Iterator


def sse_frames(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """Server-sent events as {field: value} (comment lines skipped)."""
    frame: dict[str, str] = {}
    for line in lines:
        if line.startswith(":"):
            continue
        if not line:
            if frame:
                yield frame
            frame = {}
            continue
        field, _, value = line.partition(": ")
        frame[field] = value
