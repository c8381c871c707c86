"""Provision Metabase (the pinned v0.56) through its REST API: the data source, a collection, the cards and the
"Sales overview" dashboard.

Everything is found by name first and made only when missing, so a second run makes no change: it reads
(GET) and, when it signs in with a user, opens a session (POST /api/session); with an API key it writes
nothing at all. A card whose query, display or settings differ from cards.py is updated in place, and
the dashboard's layout is set again only when one of its cards is missing or moved; cards someone else
added to the dashboard are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import SecretStr

from ops.metabase.cards import CARDS, DASHBOARD, DASHBOARD_DESCRIPTION, Card
from ops.readers import READER, SCHEMA
from shared.settings import PlatformSettings

# Metabase answers slowly while it syncs a new data source.
TIMEOUT_SECONDS = 60.0


class MetabaseSettings(PlatformSettings):
    # Metabase's own address, as this process reaches it.
    metabase_url: str = "http://127.0.0.1:3000"
    # An API key (Admin settings > Authentication > API keys, in the Administrators group); when set, no
    # user signs in.
    metabase_api_key: SecretStr = SecretStr("")
    # An administrator: signs in when there is no API key, and is created on a Metabase nobody set up yet.
    metabase_admin_email: str = ""
    metabase_admin_password: SecretStr = SecretStr("")
    # The warehouse as Metabase reaches it (in compose: host postgres); it logs in as analytics_reader with
    # SDP_ANALYTICS_READER_PASSWORD.
    metabase_warehouse_host: str = "127.0.0.1"
    metabase_warehouse_port: int = 5432
    metabase_warehouse_database: str = "salesdp"
    metabase_database_name: str = "Sales data platform"
    metabase_collection: str = "Sales data platform"


class MetabaseError(Exception):
    """Metabase refused a request, or provisioning cannot go on; the message says which and why."""


@dataclass
class Provisioned:
    database_id: int = 0
    collection_id: int = 0
    dashboard_id: int = 0
    card_ids: dict[str, int] = field(default_factory=dict)
    # what was done, one line each ("created card Orders", "found dashboard Sales overview", ...)
    actions: list[str] = field(default_factory=list)


class Metabase:
    """A thin client: JSON in and out, an error for anything but 2xx."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def request(self, method: str, path: str, body: Any = None, params: Any = None) -> Any:
        response = self.http.request(method, path, json=body, params=params)
        if response.status_code >= 400:
            raise MetabaseError(f"{method} {path} answered {response.status_code}: {response.text[:500]}")
        return response.json() if response.content else None

    def get(self, path: str, params: Any = None) -> Any:
        return self.request("GET", path, params=params)


def _sign_in(client: Metabase, settings: MetabaseSettings, done: list[str]) -> None:
    api_key = settings.metabase_api_key.get_secret_value()
    if api_key:
        client.http.headers["x-api-key"] = api_key
        return
    email, password = settings.metabase_admin_email, settings.metabase_admin_password.get_secret_value()
    if not email or not password:
        raise MetabaseError("set SDP_METABASE_API_KEY, or SDP_METABASE_ADMIN_EMAIL and SDP_METABASE_ADMIN_PASSWORD")
    properties = client.get("/api/session/properties")
    if not properties.get("has-user-setup"):
        session = client.request(
            "POST",
            "/api/setup",
            {
                "token": properties["setup-token"],
                "user": {
                    "email": email,
                    "password": password,
                    "first_name": "Sales",
                    "last_name": "Administrator",
                    "site_name": "Sales data platform",
                },
                "prefs": {"site_name": "Sales data platform", "site_locale": "en", "allow_tracking": False},
            },
        )
        done.append(f"set Metabase up with administrator {email}")
    else:
        session = client.request("POST", "/api/session", {"username": email, "password": password})
    client.http.headers["X-Metabase-Session"] = session["id"]


def _listed(answer: Any) -> list[dict[str, Any]]:
    """Metabase lists either as an array or as ``{"data": [...], "total": n}``."""
    return list(answer["data"] if isinstance(answer, dict) else answer)


def _database(client: Metabase, settings: MetabaseSettings, done: list[str]) -> int:
    name = settings.metabase_database_name
    for database in _listed(client.get("/api/database")):
        if database["name"] == name:
            done.append(f"found database {name}")
            return int(database["id"])
    password = settings.analytics_reader_password.get_secret_value()
    if not password:
        done.append(f"warning: SDP_ANALYTICS_READER_PASSWORD is unset; Metabase connects as {READER} without one")
    created = client.request(
        "POST",
        "/api/database",
        {
            "engine": "postgres",
            "name": name,
            "details": {
                "host": settings.metabase_warehouse_host,
                "port": settings.metabase_warehouse_port,
                "dbname": settings.metabase_warehouse_database,
                "user": READER,
                "password": password,
                "ssl": False,
                "tunnel-enabled": False,
                "advanced-options": False,
                # Metabase syncs (and offers) the analytics schema only: the reader can read nothing else.
                "schema-filters-type": "inclusion",
                "schema-filters-patterns": SCHEMA,
            },
            "is_full_sync": True,
            "is_on_demand": False,
        },
    )
    done.append(f"created database {name}")
    return int(created["id"])


def _collection(client: Metabase, settings: MetabaseSettings, done: list[str]) -> int:
    name = settings.metabase_collection
    for collection in _listed(client.get("/api/collection")):
        top_level = collection.get("location") == "/" and collection.get("personal_owner_id") is None
        if collection.get("name") == name and top_level and not collection.get("archived"):
            done.append(f"found collection {name}")
            return int(collection["id"])
    created = client.request(
        "POST", "/api/collection", {"name": name, "description": "Questions and dashboards over the analytics schema"}
    )
    done.append(f"created collection {name}")
    return int(created["id"])


def _items(client: Metabase, collection_id: int, model: str) -> dict[str, int]:
    answer = client.get(f"/api/collection/{collection_id}/items", params={"models": model})
    return {item["name"]: int(item["id"]) for item in _listed(answer) if item.get("model") == model}


def _query_text(dataset_query: dict[str, Any]) -> str | None:
    """The SQL of a native query, as legacy MBQL (``native.query``) or MBQL 5 (``stages[0].native``) has it."""
    if isinstance(dataset_query.get("native"), dict):
        return dataset_query["native"].get("query")
    stages = dataset_query.get("stages") or [{}]
    query = stages[0].get("native")
    return query if isinstance(query, str) else None


def _card_body(card: Card, database_id: int) -> dict[str, Any]:
    return {
        "description": card.description,
        "display": card.display,
        "visualization_settings": card.visualization_settings,
        "dataset_query": {
            "type": "native",
            "native": {"query": card.sql, "template-tags": {}},
            "database": database_id,
        },
    }


def _cards(client: Metabase, database_id: int, collection_id: int, done: list[str]) -> dict[str, int]:
    existing = _items(client, collection_id, "card")
    ids: dict[str, int] = {}
    for card in CARDS:
        wanted = _card_body(card, database_id)
        if card.name not in existing:
            created = client.request("POST", "/api/card", {"name": card.name, "collection_id": collection_id, **wanted})
            ids[card.name] = int(created["id"])
            done.append(f"created card {card.name}")
            continue
        ids[card.name] = existing[card.name]
        current = client.get(f"/api/card/{existing[card.name]}")
        same = (
            _query_text(current.get("dataset_query") or {}) == card.sql
            and current.get("database_id") == database_id
            and current.get("display") == card.display
            and current.get("description") == card.description
            and (current.get("visualization_settings") or {}) == card.visualization_settings
        )
        if same:
            done.append(f"found card {card.name}")
        else:
            client.request("PUT", f"/api/card/{existing[card.name]}", wanted)
            done.append(f"updated card {card.name}")
    return ids


def _dashboard(client: Metabase, collection_id: int, card_ids: dict[str, int], done: list[str]) -> int:
    existing = _items(client, collection_id, "dashboard")
    if DASHBOARD in existing:
        dashboard_id = existing[DASHBOARD]
        done.append(f"found dashboard {DASHBOARD}")
    else:
        created = client.request(
            "POST",
            "/api/dashboard",
            {"name": DASHBOARD, "description": DASHBOARD_DESCRIPTION, "collection_id": collection_id, "parameters": []},
        )
        dashboard_id = int(created["id"])
        done.append(f"created dashboard {DASHBOARD}")
    dashcards: list[dict[str, Any]] = client.get(f"/api/dashboard/{dashboard_id}").get("dashcards") or []
    ours = set(card_ids.values())
    by_card = {dashcard["card_id"]: dashcard for dashcard in dashcards if dashcard.get("card_id") in ours}
    layout = []
    new_id = 0
    for card in CARDS:
        place = card.place
        dashcard = by_card.get(card_ids[card.name])
        if dashcard is None:
            new_id -= 1  # a negative id asks Metabase to create the dashcard
            dashcard = {"id": new_id}
        layout.append(
            {
                "id": dashcard["id"],
                "card_id": card_ids[card.name],
                "row": place.row,
                "col": place.col,
                "size_x": place.size_x,
                "size_y": place.size_y,
                "parameter_mappings": dashcard.get("parameter_mappings") or [],
                "visualization_settings": dashcard.get("visualization_settings") or {},
                "series": [],
            }
        )
    placed = {(d["card_id"], d["row"], d["col"], d["size_x"], d["size_y"]) for d in by_card.values()}
    wanted = {(d["card_id"], d["row"], d["col"], d["size_x"], d["size_y"]) for d in layout}
    if placed == wanted and len(by_card) == len(CARDS):
        done.append(f"found the {len(CARDS)} cards on {DASHBOARD}")
        return dashboard_id
    # PUT replaces the dashboard's dashcards: the ones others added go back as they were.
    others = [
        {key: d.get(key) for key in ("id", "card_id", "row", "col", "size_x", "size_y", "parameter_mappings", "series")}
        | {"visualization_settings": d.get("visualization_settings") or {}}
        for d in dashcards
        if d.get("card_id") not in ours
    ]
    client.request("PUT", f"/api/dashboard/{dashboard_id}", {"dashcards": layout + others})
    done.append(f"placed {len(CARDS)} cards on {DASHBOARD}")
    return dashboard_id


def provision(settings: MetabaseSettings) -> Provisioned:
    result = Provisioned()
    with httpx.Client(base_url=settings.metabase_url, timeout=TIMEOUT_SECONDS) as http:
        client = Metabase(http)
        _sign_in(client, settings, result.actions)
        result.database_id = _database(client, settings, result.actions)
        result.collection_id = _collection(client, settings, result.actions)
        result.card_ids = _cards(client, result.database_id, result.collection_id, result.actions)
        result.dashboard_id = _dashboard(client, result.collection_id, result.card_ids, result.actions)
    return result
