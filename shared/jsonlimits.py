"""How deep and how large a JSON record may be, and a check of the depth that never builds the value.

Python's and ijson's parsers build a deep value before anyone can look at it (100,000 levels cost ijson
~19 GB), so the depth is counted on the text first. The record itself is level 1.
"""

from __future__ import annotations

import re

MAX_JSON_DEPTH = 64
# Far beyond a record of the contract's columns (each at most 4,096 characters), far below a worker's memory.
MAX_JSON_RECORD_BYTES = 1024 * 1024

# A string (skipped whole, brackets in it included), a bracket, or any other scalar.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]|[^\s,:\[\]{}"]+')


def nests_deeper_than(text: str, limit: int, start: int = 0) -> bool:
    """Whether the JSON value starting at ``text[start]`` nests more than ``limit`` levels deep.

    The scan stops where that value ends (or at the limit); broken JSON is left to the parser.
    """
    depth = 0
    for match in _TOKEN.finditer(text, start):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > limit:
                return True
        elif token in ("]", "}"):
            depth -= 1
            if depth <= 0:
                return False
        elif depth == 0:
            return False
    return False
