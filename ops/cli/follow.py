"""Following one batch over the api's server-sent events (``GET /v1/events?batch_id=…``) to a terminal status.

The stream is subscribed before its answer starts, so once the answer's headers arrive nothing published later is
missed; the batch's status is read right then, which covers whatever happened before (the upload's own
``batch.received`` included). A dropped stream is reopened with ``Last-Event-ID``, which replays what was
recorded meanwhile, and the status is read again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from ops.cli.client import Client, CliError, Unavailable

TERMINAL = frozenset({"loaded", "quarantined", "failed"})
STATUS_AFTER = {
    "batch.received": "received",
    "batch.staged": "staged",
    "batch.validated": "validated",
    "batch.quarantined": "quarantined",
    "batch.loaded": "loaded",
    "batch.failed": "failed",
}
# The server sends a comment at least every 15 s; a read waiting longer than this means the stream is dead.
READ_TIMEOUT = 40.0
RECONNECT_PAUSE = 1.0


@dataclass(frozen=True)
class Frame:
    id: str | None
    event: str
    data: dict[str, Any]


def _json(text: str) -> Any:
    """The frame's data; None when it is not JSON, so not one of the platform's events."""
    try:
        return json.loads(text)
    except ValueError:
        return None


def frames(lines: Iterable[str]) -> Iterator[Frame | None]:
    """The events of a ``text/event-stream``; ``None`` for a comment (connected, keep-alive), so a caller
    looks at its clock at least that often."""
    event_id: str | None = None
    event = "message"
    data: list[str] = []
    for line in lines:
        if line == "":
            payload = _json("\n".join(data)) if data else None
            if isinstance(payload, dict):
                yield Frame(event_id, event, payload)
            event_id, event, data = None, "message", []
            continue
        if line.startswith(":"):
            yield None
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            event_id = value
        elif name == "event":
            event = value
        elif name == "data":
            data.append(value)


def follow(
    client: Client,
    batch_id: str,
    *,
    timeout: float,
    on_status: Callable[[str, dict[str, Any] | None], None],
    notify: Callable[[str], None],
) -> dict[str, Any]:
    """The batch once terminal. ``on_status`` hears each status it reaches, with the event that said so (None
    when only a status read told); a batch not terminal within ``timeout`` seconds is an error."""
    deadline = time.monotonic() + timeout
    last_event_id: str | None = None

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise CliError(
                f"batch {batch_id} did not finish within {timeout:g}s; `salesdp status {batch_id}` follows up"
            )
        return left

    while True:
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        try:
            with client.stream(
                "/v1/events",
                headers=headers,
                params={"batch_id": batch_id},
                read_timeout=min(remaining(), READ_TIMEOUT),
            ) as response:
                batch = client.get_json(f"/v1/batches/{batch_id}")
                on_status(batch["status"], None)
                if batch["status"] in TERMINAL:
                    return batch
                for frame in frames(response.iter_lines()):
                    remaining()
                    if frame is None:
                        continue
                    last_event_id = frame.id or last_event_id
                    reached = STATUS_AFTER.get(frame.event)
                    if reached is None:
                        continue
                    on_status(reached, frame.data)
                    if reached in TERMINAL:
                        return client.get_json(f"/v1/batches/{batch_id}")
            notify("the event stream ended; reconnecting")
        except (httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError) as exc:
            notify(f"the event stream dropped ({type(exc).__name__}); reconnecting")
            time.sleep(min(RECONNECT_PAUSE, remaining()))
        except Unavailable as exc:
            notify(f"{exc}; reconnecting in {exc.retry_after:g}s")
            time.sleep(min(exc.retry_after, remaining()))
