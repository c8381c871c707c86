"""The dashboard: one static page (services/api/static/) that reads the JSON endpoints with the key the user
signs in with. Left out of the OpenAPI document: it is a page, not part of the API's contract."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse

from shared.http import Authenticated

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

# Only the app's own scripts, styles and endpoints: no inline script, nothing from another origin.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
@router.get("/dashboard")
async def dashboard() -> FileResponse:
    return FileResponse(STATIC_DIR / "dashboard.html", media_type="text/html", headers=PAGE_HEADERS)


@router.get("/dashboard/session")
async def session(principal: Authenticated) -> dict[str, Any]:
    """Who the presented key is, so the page shows only what its scopes allow (the admin buttons)."""
    return {"name": principal.name, "scopes": sorted(principal.scopes)}
