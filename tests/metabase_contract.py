"""A recorded contract of Metabase v0.56's REST API (the version compose pins), served over a real socket.

It knows the endpoints provisioning uses, checks each request's method, path and JSON body against the shapes
Metabase validates them with (its malli schemas: ``CardCreateSchema`` and ``CardUpdateSchema`` in
``metabase.queries.api.card``, ``UpdatedDashboardCard`` and ``DashUpdates`` in ``metabase.dashboards.api``,
the POST schemas of ``/api/setup``, ``/api/session``, ``/api/database``, ``/api/collection`` and
``/api/dashboard``), keeps state as Metabase does (integer ids from 1, a Sample Database, the root and a
personal collection, dashcards created for negative ids and deleted when left out) and answers with Metabase's
shapes (``{"data": [...], "total": n}`` for the database and item lists, a plain array for collections).

A request that does not fit answers 400 as Metabase does and is kept in ``violations``, so a test fails on it
even when the client would swallow the error. Like Metabase, a new database connection is tried before it is
saved: ``connect`` is called with its details and its error is the 400's message.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

Check = Callable[[Any], bool]
# key -> (required, check, what the check means)
Schema = dict[str, tuple[bool, Check, str]]


def non_blank(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def non_negative_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_map(value: Any) -> bool:
    return isinstance(value, dict)


def is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def is_str(value: Any) -> bool:
    return isinstance(value, str)


def maybe(check: Check) -> Check:
    return lambda value: value is None or check(value)


def sequential(check: Check) -> Check:
    return lambda value: isinstance(value, list) and all(check(item) for item in value)


def one_of(*values: str) -> Check:
    return lambda value: value in values


def email(value: Any) -> bool:
    return non_blank(value) and "@" in value and "." in value.rsplit("@", 1)[-1]


def fits(schema: Schema) -> Check:
    return lambda value: is_map(value) and not problems(value, schema)


def problems(body: Any, schema: Schema) -> dict[str, str]:
    """Metabase's ``errors`` map: each key whose value is missing or of the wrong shape."""
    if not isinstance(body, dict):
        return {"body": "value must be a map"}
    found = {}
    for key, (required, check, meaning) in schema.items():
        if key not in body:
            if required:
                found[key] = meaning
        elif not check(body[key]):
            found[key] = meaning
    return found


PARAMETER = fits({"id": (True, non_blank, "non-blank string"), "type": (True, non_blank, "non-blank string")})
PARAMETER_MAPPING = fits({"parameter_id": (True, non_blank, "non-blank string"), "target": (True, lambda v: True, "")})

SETUP: Schema = {
    "token": (True, non_blank, "Token does not match the setup token."),
    "user": (
        True,
        fits(
            {
                "email": (True, email, "value must be a valid email address."),
                "password": (True, non_blank, "password is too common."),
                "first_name": (False, maybe(non_blank), "nullable value must be a non-blank string."),
                "last_name": (False, maybe(non_blank), "nullable value must be a non-blank string."),
                "site_name": (False, maybe(non_blank), "nullable value must be a non-blank string."),
            }
        ),
        "value must be a map with email and password",
    ),
    "prefs": (
        True,
        fits(
            {
                "site_name": (True, non_blank, "value must be a non-blank string."),
                "site_locale": (False, maybe(non_blank), "String must be a valid two-letter ISO language."),
                "allow_tracking": (False, maybe(is_bool), "nullable boolean"),
            }
        ),
        "value must be a map with site_name",
    ),
}
SESSION: Schema = {
    "username": (True, non_blank, "value must be a non-blank string."),
    "password": (True, non_blank, "value must be a non-blank string."),
}
DATABASE: Schema = {
    "name": (True, non_blank, "value must be a non-blank string."),
    "engine": (True, one_of("postgres", "h2", "mysql", "sqlite"), "value must be a valid database engine."),
    "details": (True, is_map, "Value must be a map."),
    "is_full_sync": (False, maybe(is_bool), "nullable boolean"),
    "is_on_demand": (False, maybe(is_bool), "nullable boolean"),
    "cache_ttl": (False, maybe(positive_int), "nullable value must be an integer greater than zero."),
    "auto_run_queries": (False, maybe(is_bool), "nullable boolean"),
    "schedules": (False, maybe(is_map), "nullable map"),
}
# The postgres driver's connection properties.
POSTGRES_DETAILS: Schema = {
    "host": (True, non_blank, "value must be a non-blank string."),
    "port": (False, maybe(positive_int), "nullable value must be an integer greater than zero."),
    "dbname": (True, non_blank, "value must be a non-blank string."),
    "user": (True, non_blank, "value must be a non-blank string."),
    "password": (False, maybe(is_str), "nullable string"),
    "ssl": (False, maybe(is_bool), "nullable boolean"),
    "schema-filters-type": (False, maybe(one_of("all", "inclusion", "exclusion")), "all, inclusion or exclusion"),
    "schema-filters-patterns": (False, maybe(is_str), "nullable string"),
}
COLLECTION: Schema = {
    "name": (True, non_blank, "value must be a non-blank string."),
    "description": (False, maybe(non_blank), "nullable value must be a non-blank string."),
    "parent_id": (False, maybe(positive_int), "nullable value must be an integer greater than zero."),
    "namespace": (False, maybe(non_blank), "nullable value must be a non-blank string."),
    "authority_level": (False, maybe(one_of("official")), "nullable enum of official"),
}
NATIVE_QUERY: Schema = {
    "type": (True, one_of("native", "query"), "enum of native, query"),
    "database": (True, positive_int, "value must be an integer greater than zero."),
    "native": (
        True,
        fits(
            {
                "query": (True, non_blank, "value must be a non-blank string."),
                "template-tags": (False, maybe(is_map), "nullable map"),
            }
        ),
        "value must be a map with a non-blank query",
    ),
}
CARD_CREATE: Schema = {
    "name": (True, non_blank, "value must be a non-blank string."),
    "type": (False, maybe(one_of("question", "metric", "model")), "nullable enum of question, metric, model"),
    "dataset_query": (True, fits(NATIVE_QUERY), "value must be a map (a native query here)."),
    "parameters": (False, maybe(sequential(PARAMETER)), "nullable sequence of parameter"),
    "parameter_mappings": (False, maybe(sequential(PARAMETER_MAPPING)), "nullable sequence of parameter mapping"),
    "description": (False, maybe(non_blank), "nullable value must be a non-blank string."),
    "display": (True, non_blank, "value must be a non-blank string."),
    "visualization_settings": (True, is_map, "Value must be a map."),
    "collection_id": (False, maybe(positive_int), "nullable value must be an integer greater than zero."),
    "collection_position": (False, maybe(positive_int), "nullable value must be an integer greater than zero."),
    "cache_ttl": (False, maybe(positive_int), "nullable value must be an integer greater than zero."),
    "dashboard_id": (False, maybe(positive_int), "nullable value must be an integer greater than zero."),
}
CARD_UPDATE: Schema = {
    "name": (False, maybe(non_blank), "nullable value must be a non-blank string."),
    "dataset_query": (False, maybe(fits(NATIVE_QUERY)), "nullable map (a native query here)."),
    "type": (False, maybe(one_of("question", "metric", "model")), "nullable enum of question, metric, model"),
    "display": (False, maybe(non_blank), "nullable value must be a non-blank string."),
    "description": (False, maybe(is_str), "nullable string"),
    "visualization_settings": (False, maybe(is_map), "nullable map"),
    "archived": (False, maybe(is_bool), "nullable boolean"),
    "collection_id": (False, maybe(positive_int), "nullable value must be an integer greater than zero."),
}
DASHBOARD_CREATE: Schema = {
    "name": (True, non_blank, "value must be a non-blank string."),
    "parameters": (False, maybe(sequential(PARAMETER)), "nullable sequence of parameter"),
    "description": (False, maybe(is_str), "nullable string"),
    "cache_ttl": (False, maybe(positive_int), "nullable value must be an integer greater than zero."),
    "collection_id": (False, maybe(positive_int), "nullable value must be an integer greater than zero."),
    "collection_position": (False, maybe(positive_int), "nullable value must be an integer greater than zero."),
}
DASHCARD: Schema = {
    # negative: a new dashcard, which Metabase creates
    "id": (True, integer, "integer"),
    "card_id": (False, maybe(positive_int), "nullable value must be an integer greater than zero."),
    "size_x": (True, positive_int, "value must be an integer greater than zero."),
    "size_y": (True, positive_int, "value must be an integer greater than zero."),
    "row": (True, non_negative_int, "value must be an integer greater or equal to than zero."),
    "col": (True, non_negative_int, "value must be an integer greater or equal to than zero."),
    "parameter_mappings": (False, maybe(sequential(PARAMETER_MAPPING)), "nullable sequence of parameter mapping"),
    "series": (False, maybe(sequential(is_map)), "nullable sequence of map"),
    "visualization_settings": (False, maybe(is_map), "nullable map"),
}
DASHBOARD_UPDATE: Schema = {
    "name": (False, maybe(non_blank), "nullable value must be a non-blank string."),
    "description": (False, maybe(is_str), "nullable string"),
    "parameters": (False, maybe(sequential(PARAMETER)), "nullable sequence of parameter"),
    "archived": (False, maybe(is_bool), "nullable boolean"),
    "collection_id": (False, maybe(positive_int), "nullable value must be an integer greater than zero."),
    "dashcards": (False, maybe(sequential(fits(DASHCARD))), "nullable sequence of dashboard cards"),
    "tabs": (False, maybe(sequential(is_map)), "nullable sequence of tabs"),
}

Connect = Callable[[dict[str, Any]], Awaitable[str | None]]


@dataclass
class MetabaseState:
    api_key: str
    # how Metabase tries a new connection: None when it works, else the error
    connect: Connect
    setup_token: str = field(default_factory=lambda: str(uuid.uuid4()))
    users: dict[str, str] = field(default_factory=dict)
    sessions: set[str] = field(default_factory=set)
    databases: dict[int, dict[str, Any]] = field(default_factory=dict)
    collections: dict[int, dict[str, Any]] = field(default_factory=dict)
    cards: dict[int, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[int, dict[str, Any]] = field(default_factory=dict)
    dashcards: dict[int, dict[str, Any]] = field(default_factory=dict)
    # (method, path) of every request, in order
    requests: list[tuple[str, str]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    next_dashcard_id: int = 1

    def writes(self, since: int = 0) -> list[tuple[str, str]]:
        return [(m, p) for m, p in self.requests[since:] if m in ("POST", "PUT", "DELETE")]


def _bad_request(state: MetabaseState, what: str, errors: dict[str, str]) -> JSONResponse:
    state.violations.append(f"{what}: {errors}")
    return JSONResponse({"errors": errors, "specific-errors": {key: ["invalid"] for key in errors}}, status_code=400)


def _dashboard_view(state: MetabaseState, dashboard: dict[str, Any]) -> dict[str, Any]:
    dashcards = [
        {**d, "card": state.cards.get(d["card_id"]) if d["card_id"] else None}
        for d in sorted(state.dashcards.values(), key=lambda d: d["id"])
        if d["dashboard_id"] == dashboard["id"]
    ]
    return {**dashboard, "dashcards": dashcards, "tabs": [], "can_write": True}


def metabase_app(state: MetabaseState) -> FastAPI:
    app = FastAPI()
    state.databases[1] = {"id": 1, "name": "Sample Database", "engine": "h2", "details": {}, "is_sample": True}

    @app.middleware("http")
    async def record_and_authenticate(request: Request, call_next: Any) -> Response:
        path = request.url.path
        state.requests.append((request.method, path))
        public = {("GET", "/api/health"), ("GET", "/api/session/properties"), ("POST", "/api/setup"),
                  ("POST", "/api/session")}  # fmt: skip
        if (request.method, path) not in public:
            session = request.headers.get("x-metabase-session")
            if request.headers.get("x-api-key") != state.api_key and session not in state.sessions:
                return PlainTextResponse("Unauthenticated", status_code=401)
        content_type = request.headers.get("content-type", "").split(";")[0]
        if request.method in ("POST", "PUT") and content_type != "application/json":
            state.violations.append(f"{request.method} {path} without a JSON body")
            return PlainTextResponse("expected application/json", status_code=400)
        response: Response = await call_next(request)
        if response.status_code in (404, 405):
            state.violations.append(f"{request.method} {path}: no such endpoint or object")
        return response

    def new_session() -> dict[str, str]:
        session = str(uuid.uuid4())
        state.sessions.add(session)
        return {"id": session}

    @app.get("/api/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/session/properties")
    def properties() -> dict[str, Any]:
        return {
            "setup-token": None if state.users else state.setup_token,
            "has-user-setup": bool(state.users),
            "version": {"tag": "v0.56.4"},
        }

    @app.post("/api/setup")
    async def setup(request: Request) -> Response:
        body = await request.json()
        if errors := problems(body, SETUP):
            return _bad_request(state, "POST /api/setup", errors)
        if state.users:
            return JSONResponse(
                {"message": "The /api/setup route can only be used to create the first user, however a user "
                            "currently exists."},
                status_code=403,
            )  # fmt: skip
        if body["token"] != state.setup_token:
            return _bad_request(state, "POST /api/setup", {"token": "Token does not match the setup token."})
        state.users[body["user"]["email"]] = body["user"]["password"]
        # Metabase makes the first user's personal collection with it.
        state.collections[1] = {
            "id": 1,
            "name": f"{body['user'].get('first_name', '')} {body['user'].get('last_name', '')}'s Personal Collection",
            "location": "/",
            "personal_owner_id": 1,
            "archived": False,
        }
        return JSONResponse(new_session())

    @app.post("/api/session")
    async def session(request: Request) -> Response:
        body = await request.json()
        if errors := problems(body, SESSION):
            return _bad_request(state, "POST /api/session", errors)
        if state.users.get(body["username"]) != body["password"]:
            return JSONResponse({"errors": {"password": "did not match stored password"}}, status_code=401)
        return JSONResponse(new_session())

    @app.get("/api/database")
    def databases() -> dict[str, Any]:
        data = [{**d, "details": {**d["details"], "password": "**MetabasePass**"}} for d in state.databases.values()]
        return {"data": data, "total": len(data)}

    @app.post("/api/database")
    async def create_database(request: Request) -> Response:
        body = await request.json()
        errors = problems(body, DATABASE)
        if not errors and body["engine"] == "postgres":
            errors = problems(body["details"], POSTGRES_DETAILS)
            filters = body["details"].get("schema-filters-type")
            if filters in ("inclusion", "exclusion") and not non_blank(body["details"].get("schema-filters-patterns")):
                errors["schema-filters-patterns"] = "value must be a non-blank string."
        if errors:
            return _bad_request(state, "POST /api/database", errors)
        failure = await state.connect(body["details"])
        if failure is not None:
            state.violations.append(f"POST /api/database: the connection fails: {failure}")
            return JSONResponse({"message": failure, "errors": {"dbname": failure}}, status_code=400)
        database_id = max(state.databases) + 1
        state.databases[database_id] = {
            "id": database_id,
            "is_full_sync": True,
            "is_on_demand": False,
            **body,
            "is_sample": False,
        }
        saved = state.databases[database_id]
        return JSONResponse({**saved, "details": {**saved["details"], "password": "**MetabasePass**"}})

    @app.get("/api/collection")
    def collections() -> list[dict[str, Any]]:
        root = {"id": "root", "name": "Our analytics", "location": None, "personal_owner_id": None, "can_write": True}
        return [root, *state.collections.values()]

    @app.post("/api/collection")
    async def create_collection(request: Request) -> Response:
        body = await request.json()
        if errors := problems(body, COLLECTION):
            return _bad_request(state, "POST /api/collection", errors)
        collection_id = max(state.collections, default=0) + 1
        parent = body.get("parent_id")
        state.collections[collection_id] = {
            "id": collection_id,
            "name": body["name"],
            "description": body.get("description"),
            "location": f"/{parent}/" if parent else "/",
            "personal_owner_id": None,
            "archived": False,
            "slug": body["name"].lower().replace(" ", "_"),
        }
        return JSONResponse(state.collections[collection_id])

    @app.get("/api/collection/{collection_id}/items")
    def items(collection_id: int, request: Request) -> Response:
        if collection_id not in state.collections:
            return JSONResponse({"message": "Not found."}, status_code=404)
        models = request.query_params.getlist("models") or ["card", "dashboard"]
        found: list[dict[str, Any]] = []
        for model, objects in (("card", state.cards), ("dashboard", state.dashboards)):
            if model in models:
                found += [
                    {"id": o["id"], "name": o["name"], "description": o.get("description"), "model": model}
                    for o in objects.values()
                    if o.get("collection_id") == collection_id and not o.get("archived")
                ]
        return JSONResponse({"total": len(found), "data": found, "models": models, "limit": None, "offset": None})

    def card_problems(body: dict[str, Any], what: str) -> dict[str, str]:
        query = body.get("dataset_query")
        if isinstance(query, dict) and query.get("database") not in state.databases:
            return {"dataset_query": f"{what}: no database {query.get('database')}"}
        if body.get("collection_id") is not None and body["collection_id"] not in state.collections:
            return {"collection_id": f"no collection {body['collection_id']}"}
        return {}

    @app.post("/api/card")
    async def create_card(request: Request) -> Response:
        body = await request.json()
        if errors := problems(body, CARD_CREATE) or card_problems(body, "POST /api/card"):
            return _bad_request(state, "POST /api/card", errors)
        card_id = max(state.cards, default=0) + 1
        state.cards[card_id] = {
            "id": card_id,
            "type": "question",
            "archived": False,
            "collection_id": None,
            "description": None,
            **body,
            "database_id": body["dataset_query"]["database"],
            "query_type": body["dataset_query"]["type"],
        }
        return JSONResponse(state.cards[card_id])

    @app.get("/api/card/{card_id}")
    def card(card_id: int) -> Response:
        if card_id not in state.cards:
            return JSONResponse({"message": "Not found."}, status_code=404)
        return JSONResponse(state.cards[card_id])

    @app.put("/api/card/{card_id}")
    async def update_card(card_id: int, request: Request) -> Response:
        if card_id not in state.cards:
            return JSONResponse({"message": "Not found."}, status_code=404)
        body = await request.json()
        if errors := problems(body, CARD_UPDATE) or card_problems(body, "PUT /api/card"):
            return _bad_request(state, f"PUT /api/card/{card_id}", errors)
        updated = {**state.cards[card_id], **{k: v for k, v in body.items() if v is not None or k == "description"}}
        if "dataset_query" in body:
            updated["database_id"] = body["dataset_query"]["database"]
        state.cards[card_id] = updated
        return JSONResponse(updated)

    @app.post("/api/dashboard")
    async def create_dashboard(request: Request) -> Response:
        body = await request.json()
        if errors := problems(body, DASHBOARD_CREATE):
            return _bad_request(state, "POST /api/dashboard", errors)
        dashboard_id = max(state.dashboards, default=0) + 1
        state.dashboards[dashboard_id] = {
            "id": dashboard_id,
            "name": body["name"],
            "description": body.get("description"),
            "collection_id": body.get("collection_id"),
            "parameters": body.get("parameters") or [],
            "archived": False,
        }
        return JSONResponse(_dashboard_view(state, state.dashboards[dashboard_id]))

    @app.get("/api/dashboard/{dashboard_id}")
    def dashboard(dashboard_id: int) -> Response:
        if dashboard_id not in state.dashboards:
            return JSONResponse({"message": "Not found."}, status_code=404)
        return JSONResponse(_dashboard_view(state, state.dashboards[dashboard_id]))

    @app.put("/api/dashboard/{dashboard_id}")
    async def update_dashboard(dashboard_id: int, request: Request) -> Response:
        if dashboard_id not in state.dashboards:
            return JSONResponse({"message": "Not found."}, status_code=404)
        body = await request.json()
        what = f"PUT /api/dashboard/{dashboard_id}"
        if errors := problems(body, DASHBOARD_UPDATE):
            return _bad_request(state, what, errors)
        for key in ("name", "description", "parameters", "archived", "collection_id"):
            if key in body:
                state.dashboards[dashboard_id][key] = body[key]
        if "dashcards" in body:
            current = {i for i, d in state.dashcards.items() if d["dashboard_id"] == dashboard_id}
            sent = body["dashcards"]
            unknown = [d["id"] for d in sent if d["id"] >= 0 and d["id"] not in current]
            missing_cards = [d["card_id"] for d in sent if d.get("card_id") and d["card_id"] not in state.cards]
            if unknown or missing_cards:
                return _bad_request(state, what, {"dashcards": f"unknown dashcards {unknown} or cards {missing_cards}"})
            for gone in current - {d["id"] for d in sent}:
                del state.dashcards[gone]
            for sent_card in sent:
                dashcard_id = sent_card["id"]
                if dashcard_id < 0:
                    dashcard_id = state.next_dashcard_id
                    state.next_dashcard_id += 1
                state.dashcards[dashcard_id] = {
                    "parameter_mappings": [],
                    "visualization_settings": {},
                    "series": [],
                    **sent_card,
                    "id": dashcard_id,
                    "dashboard_id": dashboard_id,
                    "dashboard_tab_id": None,
                    "card_id": sent_card.get("card_id"),
                }
        return JSONResponse(_dashboard_view(state, state.dashboards[dashboard_id]))

    return app
