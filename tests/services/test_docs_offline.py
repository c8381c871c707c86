"""``/docs`` and ``/redoc`` of both HTTP services render their operations in headless Chromium with every
request that would leave the loopback interface refused: their assets are the app's own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from playwright.sync_api import expect

from services.api.app import create_app as create_api
from services.api.settings import ApiSettings
from services.ingest.app import create_app as create_ingest
from services.ingest.settings import IngestSettings
from tests.browser import chromium_page
from tests.conftest import settings_from
from tests.http_server import serve

# Operations each service's pages must show: their summaries as FastAPI derives them from the handlers.
SERVICES: dict[str, tuple[Callable[[Any], FastAPI], type[Any], list[str]]] = {
    "api": (create_api, ApiSettings, ["Kpi Summary", "Release Batch", "Top Products"]),
    "ingest": (create_ingest, IngestSettings, ["Upload File", "List Datasets"]),
}


@pytest.fixture(scope="module", params=sorted(SERVICES))
def service(request: pytest.FixtureRequest, test_env: dict[str, str]) -> Iterator[tuple[str, list[str]]]:
    create, settings_cls, operations = SERVICES[request.param]
    with serve(create(settings_from(test_env, settings_cls))) as url:
        yield url, operations


@pytest.mark.parametrize("page_path", ["/docs", "/redoc"])
def test_docs_render_their_operations_offline(service: tuple[str, list[str]], page_path: str) -> None:
    url, operations = service
    with chromium_page() as (page, traffic):
        response = page.goto(url + page_path)
        assert response is not None and response.ok
        for operation in operations:
            expect(page.get_by_text(operation, exact=True).first).to_be_attached(timeout=30_000)
        assert traffic.refused == [], traffic.refused
        # What the page's CSP stopped (ReDoc's CDN logo) is logged as an error; nothing else may be.
        assert all("Content Security Policy" in e for e in traffic.console_errors), traffic.console_errors
        assert any(r.endswith("/openapi.json") for r in traffic.requests)
