"""The OpenAPI documents of both services: the bearer scheme, every error status with the platform's error
model, and an example per operation.

FastAPI declares the bearer scheme by itself on each operation whose dependencies take ``shared.http.BEARER``,
with the scope it requires. What it cannot see is which errors those dependencies raise, and it documents its
own 422 model rather than the envelope the error handlers (shared/http.py) answer with. ``install_openapi``
adds, per operation: 401 and 503 where a key is checked (the check reads PostgreSQL), 403 where a scope is
required, 422 where anything is parsed, each as ``ErrorOut`` with an example; and the success example the
service lists for it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field


class ErrorBodyOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    code: str = Field(description="a stable machine-readable code, e.g. invalid_range")
    message: str
    details: Any


class ErrorOut(BaseModel):
    """Every error of the platform's HTTP services (shared/http.py)."""

    model_config = ConfigDict(populate_by_name=True)

    error: ErrorBodyOut


ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}
# status -> (the code an example shows when the description names none, the description)
DEFAULT_ERRORS: dict[int, tuple[str, str]] = {
    401: ("unauthenticated", "no API key, or one unknown, revoked or expired (`unauthenticated`)"),
    403: ("forbidden", "the key lacks the scope the operation needs (`forbidden`)"),
    422: ("invalid_request", "a parameter, a header or the body is not valid (`invalid_request`)"),
    503: (
        "database_unavailable",
        "a dependency is down (`database_unavailable`, `broker_unavailable`): retry after `Retry-After`",
    ),
}
_CODE = re.compile(r"\(`([a-z][a-z_]*)`")

# (method, path) -> {"response": the success answer's example, "request": the JSON body's, if any,
# "media_type": the answer's when it is not JSON}
Examples = Mapping[tuple[str, str], Mapping[str, Any]]


def errors(**described: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for error statuses, each with the error model: ``errors(e409="… (`code`)")``;
    the first code in parentheses and backticks is the one its example shows."""
    return {int(k[1:]): {"model": ErrorOut, "description": v} for k, v in described.items()}


def _error_example(status: int, description: str) -> dict[str, Any]:
    named = _CODE.search(description)
    code = named[1] if named else DEFAULT_ERRORS.get(status, ("error", ""))[0]
    message = description.split(" (`")[0].replace("`", "").strip() or code
    return {"error": {"code": code, "message": message, "details": {}}}


def _statuses_of(operation: dict[str, Any]) -> set[int]:
    """The error statuses the operation's key check can answer: FastAPI declares a security requirement for
    each operation whose dependencies check a key (shared/http.py), with the scope it needs."""
    requirements = operation.get("security", [])
    statuses: set[int] = {401, 503} if requirements else set()
    if any(scopes for requirement in requirements for scopes in requirement.values()):
        statuses.add(403)
    return statuses


def _document_errors(operation: dict[str, Any], statuses: set[int]) -> None:
    responses: dict[str, Any] = operation["responses"]
    if "parameters" in operation or "requestBody" in operation:
        statuses = statuses | {422}
    if "requestBody" in operation:
        # A body that is not even text of its media type fails before validation, in FastAPI's own parser.
        unparsed = "a body that cannot be parsed (`http_error`)"
        described = responses.get("400", {}).get("description")
        responses["400"] = {"description": f"{described}; or {unparsed}" if described else unparsed}
    for implied in statuses:
        described = responses.get(str(implied), {}).get("description", "")
        if not described or described == "Validation Error":
            responses[str(implied)] = {"description": DEFAULT_ERRORS[implied][1]}
    for status, response in responses.items():
        if int(status) < 400:
            continue
        response["content"] = {
            "application/json": {
                "schema": ERROR_REF,
                "example": _error_example(int(status), response.get("description", "")),
            }
        }


def _document_example(operation: dict[str, Any], example: Mapping[str, Any]) -> None:
    if "response" in example:
        status = min(s for s in operation["responses"] if int(s) < 400)
        content = operation["responses"][status].setdefault("content", {})
        content.setdefault(example.get("media_type", "application/json"), {})["example"] = example["response"]
    if "request" in example:
        operation["requestBody"]["content"]["application/json"]["example"] = example["request"]


def build_openapi(app: FastAPI, examples: Examples) -> dict[str, Any]:
    document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            _document_errors(operation, _statuses_of(operation))
            if (method.upper(), path) in examples:
                _document_example(operation, examples[(method.upper(), path)])
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    error_schema = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error_schema.pop("$defs", {}))
    schemas["ErrorOut"] = error_schema
    return document


def install_openapi(app: FastAPI, examples: Examples) -> None:
    """Serve ``build_openapi``'s document, built once, as the app's OpenAPI."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app, examples)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
