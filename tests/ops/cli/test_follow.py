"""Reading the api's event stream: frames as services/api/events.py writes them, comments surfaced so the follower
checks its clock, and data that is not an event skipped."""

from __future__ import annotations

import httpx

from ops.cli.follow import Frame, frames
from services.api.events import _frame
from shared.events import BatchQuarantined


def test_frames_of_the_apis_stream() -> None:
    event = BatchQuarantined(
        batch_id="6f1c8a3e-59a4-4f39-9d6a-2b8f3f0c1e11", dataset="sales", reason="r", failed_checks=["rows.reject_rate"]
    )
    body = ": connected\n\n" + _frame(event) + ": keep-alive\n\nevent: other\ndata: not json\n\n"
    lines = httpx.Response(200, content=body.encode()).iter_lines()
    assert list(frames(lines)) == [
        None,
        Frame(str(event.event_id), "batch.quarantined", event.model_dump(mode="json")),
        None,
    ]
