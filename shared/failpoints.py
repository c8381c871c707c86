"""Failpoints: named places where a process dies on purpose, so fault tests can kill it exactly there.

Off unless a name is listed in the ``SDP_FAILPOINTS`` setting; production never sets it.
"""

from __future__ import annotations

import os

from shared.logs import get_logger
from shared.settings import PlatformSettings

EXIT_CODE = 86

log = get_logger(__name__)


def hit(settings: PlatformSettings, name: str) -> None:
    if name in settings.failpoints:
        log.warning("failpoint.hit", failpoint=name)
        os._exit(EXIT_CODE)
