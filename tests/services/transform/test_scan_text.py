"""scan_text: the pass that decides whether Spark needs its one-partition multi-line CSV parser."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from services.transform.service import TextShape, scan_text

HEADER = b"id,name\n"


@pytest.mark.parametrize(
    ("body", "shape"),
    [
        (HEADER + b"1,a\n2,b\n", TextShape(lines=3, open_quotes=False)),
        (HEADER + b"1,a\n2,b", TextShape(lines=3, open_quotes=False)),
        (HEADER + b'1,"a, quoted"\n2,"say ""hi"""\n', TextShape(lines=3, open_quotes=False)),
        (HEADER + b'1,"two\nlines"\n2,b\n', TextShape(lines=4, open_quotes=True)),
        (HEADER + b'1,"never closed\n', TextShape(lines=2, open_quotes=True)),
        (HEADER + b'1,"open at the end', TextShape(lines=2, open_quotes=True)),
        (HEADER + b"1,a\r\n\r\n2,b\r\n", TextShape(lines=4, open_quotes=False)),
        (b"", TextShape(lines=0, open_quotes=False)),
    ],
)
@pytest.mark.parametrize("block_size", [3, 7, 1 << 20])
def test_scan_text_counts_lines_and_finds_quoted_newlines(
    tmp_path: Path, body: bytes, shape: TextShape, block_size: int
) -> None:
    """Small blocks put block ends inside lines and quoted fields: the answer must not change."""
    path = tmp_path / "f.csv"
    path.write_bytes(body)
    assert scan_text(path, block_size=block_size) == shape


def test_scan_text_reads_through_gzip(tmp_path: Path) -> None:
    path = tmp_path / "f.csv.gz"
    path.write_bytes(gzip.compress(HEADER + b'1,"two\nlines"\n'))
    assert scan_text(path) == TextShape(lines=3, open_quotes=True)
