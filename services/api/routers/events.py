"""The live stream of batch events (services/api/events.py)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from services.api.deps import Settings
from services.api.events import open_stream
from shared.http import BatchReader

router = APIRouter(prefix="/v1/events")


@router.get(
    "",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent batch events"}},
)
async def events(
    request: Request,
    _: BatchReader,
    settings: Settings,
    batch_id: uuid.UUID | None = None,
    last_event_id: Annotated[uuid.UUID | None, Header()] = None,
) -> StreamingResponse:
    """Every batch event as it is published (``event:`` its type, ``data:`` the event, ``id:`` its
    event_id); optionally one batch's only. A client reconnecting with ``Last-Event-ID`` first gets what
    was recorded after that event."""
    stream = await open_stream(request, settings, batch_id=batch_id, last_event_id=last_event_id)
    return StreamingResponse(
        stream, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
