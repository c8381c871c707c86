"""The statement files themselves (services/warehouse/sql/)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.warehouse import sql

FILES = sorted(sql.FOLDER.rglob("*.sql"))
# What SQLAlchemy's text() takes for a bind parameter, comments included.
BIND = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")


def test_the_folder_holds_the_statements() -> None:
    assert len(FILES) > 50


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(sql.FOLDER)))
def test_comments_hold_no_bind_parameters(path: Path) -> None:
    comments = [line.split("--", 1)[1] for line in path.read_text().splitlines() if "--" in line]
    assert not [c for c in comments if BIND.search(c)], "text() would bind a parameter named in a comment"
