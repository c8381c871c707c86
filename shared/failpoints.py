"""Failpoints: named places where a process dies or stops on purpose, so fault tests can kill it exactly there.

Off unless a name is listed in the ``SDP_FAILPOINTS`` setting; production never sets it. An entry is
``name`` or ``name:action``:

- ``exit`` (the default): the process ends at once with :data:`EXIT_CODE`, as a crash would: no cleanup,
  an open transaction is rolled back by PostgreSQL when the connection drops.
- ``hang``: the process logs ``failpoint.hang`` (with the batch_id of the stage it is in) and blocks
  there until it is killed, so a test can SIGKILL it at a known point. A worker is blocked whole: a
  solo pool runs its task on the thread that would otherwise fetch the next message.

``name:action:marker`` fires only for a batch whose file name contains ``marker``: a poison file, which
kills the worker of every attempt while the other batches go through.

The names:

- ``ingest.after_commit``: the batch row and its ``batch.received`` outbox event are committed, the event
  is not published yet.
- ``<stage>.before_commit`` (``transform``, ``quality``, ``warehouse``): the stage's work is done inside
  its transaction, which holds the batch row's lock and everything the stage wrote, not committed yet.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from shared.logs import get_logger

if TYPE_CHECKING:
    from shared.settings import PlatformSettings

EXIT_CODE = 86
EXIT = "exit"
HANG = "hang"
ACTIONS = (EXIT, HANG)

log = get_logger(__name__)


def action(settings: PlatformSettings, name: str, subject: str | None = None) -> str | None:
    """What the failpoint ``name`` is set to do for ``subject`` (a batch's file name), or None when it is off."""
    for entry in settings.failpoints:
        point, _, rest = entry.partition(":")
        kind, _, marker = rest.partition(":")
        if point != name or (marker and marker not in (subject or "")):
            continue
        kind = kind or EXIT
        if kind not in ACTIONS:
            raise ValueError(f"failpoint {entry!r}: unknown action {kind!r} (one of {', '.join(ACTIONS)})")
        return kind
    return None


def hit(settings: PlatformSettings, name: str, subject: str | None = None) -> None:
    kind = action(settings, name, subject)
    if kind == EXIT:
        log.warning("failpoint.hit", failpoint=name)
        os._exit(EXIT_CODE)
    if kind == HANG:
        log.warning("failpoint.hang", failpoint=name, pid=os.getpid())
        while True:
            time.sleep(3600)
