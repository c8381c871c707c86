"""The warehouse load's SQL: one statement per file, in a folder per load, numbered in run order.

``statement("sales/07_bind_batch")`` is ``sales/07_bind_batch.sql`` beside this module. A file runs as it is
with ``psql -f`` given its binds (``:batch_id``); only the dimension merge's files are templates, whose
``{placeholders}`` the merge fills from its constant specs (dimensions.py).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from sqlalchemy import TextClause, text

FOLDER = Path(__file__).parent


@cache
def source(name: str) -> str:
    return (FOLDER / f"{name}.sql").read_text()


@cache
def statement(name: str) -> TextClause:
    return text(source(name))
