"""``python -m ops.metabase provision`` against the recorded contract of Metabase v0.56's API
(tests/metabase_contract.py): the first run creates the data source, the collection, the cards and the
dashboard with its dashcards; a second run writes nothing. The data source is tried as Metabase tries it,
by connecting to the session's database as analytics_reader, and every card's SQL runs there as that role."""

from __future__ import annotations

import asyncio
import copy
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
import httpx
import pytest

from ops.metabase.cards import CARDS, DASHBOARD
from ops.readers import READER
from shared.settings import PlatformSettings
from tests.conftest import as_role
from tests.http_server import serve
from tests.metabase_contract import MetabaseState, metabase_app

API_KEY = "mb_contract_key"
ADMIN = {"SDP_METABASE_ADMIN_EMAIL": "admin@example.com", "SDP_METABASE_ADMIN_PASSWORD": "a-long-admin-password-1"}


async def _connect_as_metabase(details: dict[str, Any]) -> str | None:
    """What Metabase does before it saves a connection, and then its sync: log in, list the schema's tables."""
    try:
        conn = await asyncpg.connect(
            host=details["host"],
            port=details.get("port") or 5432,
            database=details["dbname"],
            user=details["user"],
            password=details.get("password") or None,
        )
    except (OSError, asyncpg.PostgresError) as exc:
        return f"connection refused: {exc}"
    try:
        visible = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
            details.get("schema-filters-patterns"),
        )
    finally:
        await conn.close()
    return None if visible else "no table of the schema filter is readable"


@contextmanager
def fake_metabase(*, set_up: bool) -> Iterator[tuple[str, MetabaseState]]:
    state = MetabaseState(api_key=API_KEY, connect=_connect_as_metabase)
    if set_up:
        state.users[ADMIN["SDP_METABASE_ADMIN_EMAIL"]] = ADMIN["SDP_METABASE_ADMIN_PASSWORD"]
    with serve(metabase_app(state)) as url:
        yield url, state


def provision(url: str, settings: PlatformSettings, **env: str) -> subprocess.CompletedProcess[str]:
    warehouse = settings.database_url.rsplit("/", 1)[1]
    return subprocess.run(
        [sys.executable, "-m", "ops.metabase", "provision"],
        env={
            **os.environ,
            "SDP_METABASE_URL": url,
            "SDP_METABASE_WAREHOUSE_DATABASE": warehouse,
            # This machine's server trusts loopback: the reader logs in without a password.
            "SDP_ANALYTICS_READER_PASSWORD": "",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def snapshot(state: MetabaseState) -> dict[str, Any]:
    return copy.deepcopy(
        {
            "databases": state.databases,
            "collections": state.collections,
            "cards": state.cards,
            "dashboards": state.dashboards,
            "dashcards": state.dashcards,
        }
    )


def assert_provisioned(state: MetabaseState, settings: PlatformSettings) -> None:
    (database,) = [d for d in state.databases.values() if d["engine"] == "postgres"]
    details = database["details"]
    assert (details["user"], details["dbname"]) == (READER, settings.database_url.rsplit("/", 1)[1])
    assert (details["schema-filters-type"], details["schema-filters-patterns"]) == ("inclusion", "analytics")
    (collection,) = [c for c in state.collections.values() if c["personal_owner_id"] is None]
    cards = {c["name"]: c for c in state.cards.values()}
    assert sorted(cards) == sorted(card.name for card in CARDS)
    assert {c["collection_id"] for c in cards.values()} == {collection["id"]}
    assert {c["database_id"] for c in cards.values()} == {database["id"]}
    (dashboard,) = state.dashboards.values()
    assert (dashboard["name"], dashboard["collection_id"]) == (DASHBOARD, collection["id"])
    placed = {
        (state.cards[d["card_id"]]["name"], d["row"], d["col"], d["size_x"], d["size_y"])
        for d in state.dashcards.values()
        if d["dashboard_id"] == dashboard["id"]
    }
    assert placed == {(c.name, c.place.row, c.place.col, c.place.size_x, c.place.size_y) for c in CARDS}


async def _run_as_reader(database_url: str, queries: list[str]) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        for query in queries:
            await conn.fetch(query)
    finally:
        await conn.close()


def test_provisioning_creates_everything_then_changes_nothing(settings: PlatformSettings) -> None:
    with fake_metabase(set_up=False) as (url, state):
        first = provision(url, settings, **ADMIN)
        assert first.returncode == 0, first.stderr
        assert state.violations == []
        writes = state.writes()
        assert writes[:3] == [("POST", "/api/setup"), ("POST", "/api/database"), ("POST", "/api/collection")]
        assert writes[3:] == [("POST", "/api/card")] * len(CARDS) + [
            ("POST", "/api/dashboard"),
            ("PUT", "/api/dashboard/1"),
        ]
        assert_provisioned(state, settings)
        before, seen = snapshot(state), len(state.requests)

        second = provision(url, settings, **ADMIN)

        assert second.returncode == 0, second.stderr
        assert state.violations == []
        # Signing in is the only write: a session, not a change.
        assert state.writes(since=seen) == [("POST", "/api/session")]
        assert snapshot(state) == before
        assert "created" not in second.stdout and "updated" not in second.stdout
        assert f"found the {len(CARDS)} cards on {DASHBOARD}" in second.stdout

    asyncio.run(
        _run_as_reader(
            as_role(settings.database_url, READER),
            [c["dataset_query"]["native"]["query"] for c in state.cards.values()],
        )
    )


def test_with_an_api_key_a_second_run_writes_nothing(settings: PlatformSettings) -> None:
    with fake_metabase(set_up=True) as (url, state):
        first = provision(url, settings, SDP_METABASE_API_KEY=API_KEY)
        assert first.returncode == 0, first.stderr
        assert ("POST", "/api/session") not in state.writes()
        seen = len(state.requests)

        second = provision(url, settings, SDP_METABASE_API_KEY=API_KEY)

        assert second.returncode == 0, second.stderr
        assert state.writes(since=seen) == []
        assert state.violations == []
        assert_provisioned(state, settings)


def test_a_changed_card_and_a_removed_dashcard_are_put_back_and_others_cards_kept(settings: PlatformSettings) -> None:
    with fake_metabase(set_up=True) as (url, state):
        assert provision(url, settings, SDP_METABASE_API_KEY=API_KEY).returncode == 0
        by_name = {c["name"]: c for c in state.cards.values()}
        by_name["Orders"]["dataset_query"]["native"]["query"] = "SELECT 1"
        (revenue_dashcard,) = [d for d in state.dashcards.values() if d["card_id"] == by_name["Revenue"]["id"]]
        del state.dashcards[revenue_dashcard["id"]]
        # Someone's own card on the dashboard, outside the collection's cards.
        state.dashcards[99] = {"id": 99, "dashboard_id": 1, "card_id": None, "row": 30, "col": 0, "size_x": 4,
                               "size_y": 2, "visualization_settings": {"text": "note"}, "parameter_mappings": [],
                               "series": []}  # fmt: skip
        seen = len(state.requests)

        again = provision(url, settings, SDP_METABASE_API_KEY=API_KEY)

        assert again.returncode == 0, again.stderr
        assert state.writes(since=seen) == [
            ("PUT", f"/api/card/{by_name['Orders']['id']}"),
            ("PUT", "/api/dashboard/1"),
        ]
        assert state.violations == []
        assert (
            state.cards[by_name["Orders"]["id"]]["dataset_query"]["native"]["query"]
            == "SELECT orders FROM analytics.kpi"
        )
        assert state.dashcards[99]["visualization_settings"] == {"text": "note"}
        del state.dashcards[99]
        assert_provisioned(state, settings)


def test_provisioning_fails_when_metabase_cannot_reach_the_warehouse(settings: PlatformSettings) -> None:
    with fake_metabase(set_up=True) as (url, state):
        failed = provision(url, settings, SDP_METABASE_API_KEY=API_KEY, SDP_METABASE_WAREHOUSE_PORT="1")
        assert failed.returncode == 1
        assert "POST /api/database answered 400" in failed.stderr
        assert state.cards == {}


GOOD_CARD = {
    "name": "c",
    "display": "scalar",
    "visualization_settings": {},
    "dataset_query": {"type": "native", "native": {"query": "SELECT 1"}, "database": 1},
}
DASHCARD = {"id": -1, "card_id": 1, "row": 0, "col": 0, "size_x": 4, "size_y": 3}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/card", {k: v for k, v in GOOD_CARD.items() if k != "display"}),
        ("POST", "/api/card", {**GOOD_CARD, "visualization_settings": None}),
        (
            "POST",
            "/api/card",
            {**GOOD_CARD, "dataset_query": {"type": "native", "native": {"query": ""}, "database": 1}},
        ),
        ("POST", "/api/card", {**GOOD_CARD, "collection_id": "1"}),
        ("POST", "/api/card", {**GOOD_CARD, "description": ""}),
        ("PUT", "/api/dashboard/1", {"dashcards": [{**DASHCARD, "size_x": 0}]}),
        ("PUT", "/api/dashboard/1", {"dashcards": [{k: v for k, v in DASHCARD.items() if k != "row"}]}),
        ("PUT", "/api/dashboard/1", {"dashcards": [{**DASHCARD, "id": 7}]}),
        ("POST", "/api/dashboard", {"name": " "}),
        ("POST", "/api/collection", {"name": "c", "parent_id": 0}),
        ("POST", "/api/database", {"engine": "postgres", "name": "w", "details": {"host": "h", "user": "u"}}),
        ("POST", "/api/database", {"engine": "oracle-ish", "name": "w", "details": {}}),
        ("GET", "/api/cards", None),
        ("DELETE", "/api/dashboard/1", None),
    ],
)
def test_the_contract_refuses_requests_of_the_wrong_shape(method: str, path: str, body: Any) -> None:
    with fake_metabase(set_up=True) as (url, state):
        headers = {"x-api-key": API_KEY}
        good_dashboard = {"name": "d", "collection_id": None}
        assert httpx.post(f"{url}/api/card", json=GOOD_CARD, headers=headers).status_code == 200
        assert httpx.post(f"{url}/api/dashboard", json=good_dashboard, headers=headers).status_code == 200
        assert state.violations == []

        answer = httpx.request(method, f"{url}{path}", json=body, headers=headers)

        assert answer.status_code in (400, 404, 405)
        assert len(state.violations) == 1, state.violations


def test_the_contract_refuses_requests_without_credentials() -> None:
    with fake_metabase(set_up=True) as (url, _):
        assert httpx.get(f"{url}/api/database").status_code == 401
        assert httpx.get(f"{url}/api/database", headers={"x-api-key": uuid.uuid4().hex}).status_code == 401
        assert httpx.get(f"{url}/api/database", headers={"x-api-key": API_KEY}).status_code == 200
