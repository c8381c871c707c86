"""``/docs`` (Swagger UI) and ``/redoc`` from assets vendored in ``shared/vendor/``, so that they render on a
machine without internet: FastAPI's own pages load their scripts from a CDN (and ReDoc its fonts from Google).

A service builds its app with ``docs_url=None, redoc_url=None`` and calls ``install_docs``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

VENDOR_DIR = Path(__file__).resolve().parent / "vendor"
ASSETS_PATH = "/docs-assets"

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def _same_origin_only(page: HTMLResponse) -> HTMLResponse:
    """Confine the page to this server: ReDoc's footer loads its logo from its vendor's CDN, hard-coded, and a
    CSP stops the browser from even asking. Swagger UI's one inline script (FastAPI's) is allowed by its hash;
    both inject their styles at run time and ReDoc runs its search in a blob worker."""
    body = bytes(page.body)
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(m.encode()).digest()).decode()}'"
        for m in _INLINE_SCRIPT.findall(body.decode())
    )
    page.headers["Content-Security-Policy"] = "; ".join(
        (
            "default-src 'self'",
            f"script-src 'self' {hashes}".strip(),
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "worker-src 'self' blob:",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        )
    )
    return page


def install_docs(app: FastAPI) -> None:
    app.mount(ASSETS_PATH, StaticFiles(directory=VENDOR_DIR), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    favicon = f"{ASSETS_PATH}/swagger-ui-dist/favicon-32x32.png"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _same_origin_only(
            get_swagger_ui_html(
                openapi_url=openapi_url,
                title=f"{app.title} — Swagger UI",
                swagger_js_url=f"{ASSETS_PATH}/swagger-ui-dist/swagger-ui-bundle.js",
                swagger_css_url=f"{ASSETS_PATH}/swagger-ui-dist/swagger-ui.css",
                swagger_favicon_url=favicon,
                # Swagger UI would otherwise send the document to swagger.io's validator for its badge.
                swagger_ui_parameters={"validatorUrl": None},
            )
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _same_origin_only(
            get_redoc_html(
                openapi_url=openapi_url,
                title=f"{app.title} — ReDoc",
                redoc_js_url=f"{ASSETS_PATH}/redoc/redoc.standalone.js",
                redoc_favicon_url=favicon,
                with_google_fonts=False,
            )
        )
