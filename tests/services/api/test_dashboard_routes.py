"""The dashboard's routes over a socket: the page and its headers, its assets, and the session endpoint that
tells the page what the signed-in key may do. The page itself is tested in Chromium (tests/e2e)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import httpx
import pytest

from ops.admin import create_key
from services.api.app import create_app
from services.api.routers.dashboard import STATIC_DIR
from services.api.settings import ApiSettings
from shared.settings import PlatformSettings
from tests.conftest import settings_from
from tests.http_server import serve


@pytest.fixture(scope="module")
def api_url(test_env: dict[str, str]) -> Iterator[str]:
    with serve(create_app(settings_from(test_env, ApiSettings))) as url:
        yield url


@pytest.mark.parametrize("path", ["/", "/dashboard"])
def test_the_page_is_served_with_a_policy_admitting_only_its_own_scripts(api_url: str, path: str) -> None:
    response = httpx.get(api_url + path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = dict(p.strip().split(" ", 1) for p in response.headers["content-security-policy"].split(";"))
    assert policy["script-src"] == "'self'" and policy["connect-src"] == "'self'"
    assert policy["default-src"] == "'none'"
    assert response.headers["referrer-policy"] == "no-referrer"
    # Its scripts are files of the app, none inline (the policy would refuse an inline one).
    scripts = re.findall(r"<script([^>]*)>", response.text)
    assert scripts and all('src="/static/' in s for s in scripts)


def test_the_assets_are_the_apps_own(api_url: str) -> None:
    for asset, kind in (
        ("/static/dashboard.js", "javascript"),
        ("/static/dashboard.css", "text/css"),
        ("/static/vendor/chart.js/chart.umd.min.js", "javascript"),
        ("/docs-assets/swagger-ui-dist/swagger-ui-bundle.js", "javascript"),
        ("/docs-assets/redoc/redoc.standalone.js", "javascript"),
    ):
        response = httpx.get(api_url + asset)
        assert response.status_code == 200, asset
        assert kind in response.headers["content-type"], asset
    # The page's own files name no other origin (the vendored library's comments name its home page).
    for own in ("dashboard.html", "dashboard.js", "dashboard.css"):
        assert not re.search(r"https?://", (STATIC_DIR / own).read_text()), own


def test_the_session_names_the_keys_scopes(api_url: str, settings: PlatformSettings) -> None:
    assert httpx.get(f"{api_url}/dashboard/session").status_code == 401
    key = asyncio.run(create_key(settings, name="dashboard-test", scopes=["kpis:read", "batches:read"]))
    response = httpx.get(f"{api_url}/dashboard/session", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    assert response.json() == {"name": "dashboard-test", "scopes": ["batches:read", "kpis:read"]}
