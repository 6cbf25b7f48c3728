"""The admin API's OpenAPI description, written by hand; tests/admin checks every route answers."""

from __future__ import annotations

from typing import Any

_RANGE = [{"name": "since", "in": "query", "schema": {"type": "number"}, "description": "epoch seconds (default: a week ago)"},
          {"name": "until", "in": "query", "schema": {"type": "number"}, "description": "epoch seconds (default: now)"}]
_ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
_KEY_SPEC = {"type": "object", "additionalProperties": False, "properties": {
    "name": {"type": "string"}, "owner": {"type": "string"}, "user": {"type": "string"}, "team": {"type": "string"},
    "project": {"type": "string"}, "models": {"type": "array", "items": {"type": "string"}},
    "tiers": {"type": "array", "items": {"type": "string"}},
    "budgets": {"type": "array", "items": {"type": "object"}, "description": "limits.budgets rules"},
    "rate_limits": {"type": "array", "items": {"type": "object"}, "description": "limits.rate_limits rules"},
    "expires_at": {"type": "number"}, "metadata": {"type": "object"}}}


def _op(summary: str, params: list[dict[str, Any]] | None = None, body: bool = False) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "parameters": params or [],
                          "responses": {"200": {"description": "OK"}, "401": {"description": "no or wrong admin key"}}}
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/KeySpec"}}}}
    return op


# (method, path) of every route, with its operation: the single list the description is built from.
ROUTES: dict[tuple[str, str], dict[str, Any]] = {
    ("get", "/admin/openapi.json"): _op("this description"),
    ("get", "/admin/keys"): _op("list keys (keyset pagination by id) with each budget's remaining amount", [
        {"name": "after", "in": "query", "schema": {"type": "string"}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 500}},
        {"name": "q", "in": "query", "schema": {"type": "string"}},
        {"name": "include_revoked", "in": "query", "schema": {"type": "boolean"}}]),
    ("post", "/admin/keys"): _op("create a key; the response's `key` is the secret, shown this once", body=True),
    ("get", "/admin/keys/{id}"): _op("one key, with usage", _ID),
    ("patch", "/admin/keys/{id}"): _op("change the fields sent; others keep their values", _ID, body=True),
    ("delete", "/admin/keys/{id}"): _op("revoke", _ID),
    ("post", "/admin/keys/{id}/rotate"): _op("new secret for the same key (same id, caller, spend)", _ID),
    ("post", "/admin/keys/{id}/revoke"): _op("revoke: refused by every replica within keys.poll_interval_seconds", _ID),
    ("get", "/admin/overview"): _op("requests, spend, savings and errors per time bucket", [
        *_RANGE, {"name": "bucket", "in": "query", "schema": {"enum": ["minute", "hour", "day"]}}]),
    ("get", "/admin/spend"): _op("spend grouped by key, team, model, tag or time bucket", [
        *_RANGE, {"name": "by", "in": "query", "schema": {"enum": ["key", "team", "model", "tag", "bucket"]}}]),
    ("get", "/admin/routing"): _op("routing mix per tier and model", _RANGE),
    ("get", "/admin/reasons"): _op("decision reasons, most frequent first", _RANGE),
    ("get", "/admin/deployments"): _op("per deployment: attempts, latency, errors, breaker state", _RANGE),
    ("get", "/admin/requests"): _op("request log, newest first, keyset pagination", [
        {"name": "before_id", "in": "query", "schema": {"type": "integer"}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 200}},
        *({"name": c, "in": "query", "schema": {"type": "string"}}
          for c in ("q", "caller", "chosen_model", "status", "request_id", "deployment"))]),
    ("get", "/admin/audit"): _op("admin audit log, newest first", [
        {"name": "before_id", "in": "query", "schema": {"type": "integer"}}]),
}


def openapi() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), op in ROUTES.items():
        paths.setdefault(path, {})[method] = op
    return {"openapi": "3.1.0", "info": {"title": "tierroute admin API", "version": "1"},
            "components": {"schemas": {"KeySpec": _KEY_SPEC},
                           "securitySchemes": {"adminKey": {"type": "http", "scheme": "bearer"}}},
            "security": [{"adminKey": []}], "paths": paths}
