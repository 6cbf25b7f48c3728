"""The admin API (``/admin/...``) and the console's static files (``/ui``), mounted by the gateway.

Every ``/admin`` route needs ``server.admin_key`` (``Authorization: Bearer`` or ``x-admin-key``), compared
in constant time; without an admin key configured they all answer 404, so the API cannot be reached at all.
The console's files under ``/ui`` hold no data: the page asks for the key and sends it as a header to the
API. Database work runs in worker threads, so a slow query never blocks requests being routed.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import mimetypes
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl

import orjson
from pydantic import ValidationError

from .._exceptions import AuthenticationError, InvalidRequest, TierrouteError
from ..keys.settings import KeySpec, check_spec
from .openapi import openapi
from .queries import BUCKETS, LedgerQueries

log = logging.getLogger("tierroute.admin")

JSON = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
MAX_ADMIN_BODY = 1 << 20
Send = Callable[[dict[str, Any]], Awaitable[None]]


class _Reply(Exception):
    def __init__(self, status: int, body: Any) -> None:
        self.status, self.body = status, body


class AdminConsole:
    def __init__(self, router: Any, registry: Any, admin_key: str | None) -> None:
        self.router = router
        self.registry = registry
        self.guard = next((g for g in router.guards if getattr(g, "registry", None) is registry), None) if registry is not None else None
        self._admin_key = admin_key.encode() if admin_key else None
        self._queries: LedgerQueries | None = None
        self._static = resources.files("tierroute.admin") / "static"

    # -- plumbing -----------------------------------------------------------------------------------
    def _db_queries(self) -> LedgerQueries:
        if self._queries is None:
            settings = self.router.settings.ledger
            if settings.backend == "none":
                raise _Reply(503, {"error": {"message": "no ledger: set ledger.backend to sqlite or postgres",
                                             "type": "server_error"}})
            from ..keys.db import Database

            # Its own connection: a long rollup pass must not hold up the key registry's polling.
            self._queries = LedgerQueries(Database(settings))
        return self._queries

    def _authorized(self, scope: dict[str, Any]) -> bool:
        assert self._admin_key is not None
        for name, value in scope["headers"]:
            token = None
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                token = value[7:].strip()
            elif name == b"x-admin-key":
                token = value.strip()
            if token is not None and hmac.compare_digest(token, self._admin_key):
                return True
        return False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        path: str = scope["path"]
        if self._admin_key is None:
            await _send(send, 404, {"error": {"message": "the admin API and console are off: set server.admin_key",
                                              "type": "invalid_request_error"}})
            return
        if path == "/ui" or path.startswith("/ui/"):
            await self._serve_static(path, send)
            return
        try:
            if not self._authorized(scope):
                raise AuthenticationError("admin API: send the admin key as 'Authorization: Bearer <admin key>' "
                                          "or 'x-admin-key'")
            body = await _read_json(receive) if scope["method"] in ("POST", "PATCH", "PUT") else None
            params = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            status, payload = await self._dispatch(scope["method"], path.rstrip("/"), params, body)
        except _Reply as reply:
            status, payload = reply.status, reply.body
        except TierrouteError as exc:
            status, payload = exc.http_status, exc.to_dict()
        except (ValueError, KeyError) as exc:
            status, payload = 400, {"error": {"message": f"bad parameter: {exc}", "type": "invalid_request_error"}}
        except Exception:  # noqa: BLE001 - the gateway keeps serving; details go to the log only
            log.exception("admin API error on %s %s", scope["method"], path)
            status, payload = 500, {"error": {"message": "internal error; see the gateway's log", "type": "server_error"}}
        await _send(send, status, payload)

    async def _serve_static(self, path: str, send: Send) -> None:
        name = path[len("/ui"):].lstrip("/") or "index.html"
        if "/" in name or name.startswith(".") or not (self._static / name).is_file():
            await _send(send, 404, {"error": {"message": f"no file {name!r}", "type": "invalid_request_error"}})
            return
        data = (self._static / name).read_bytes()
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", kind.encode()), (b"cache-control", b"no-cache"),
            (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; style-src 'self'"),
            (b"x-frame-options", b"DENY")]})
        await send({"type": "http.response.body", "body": data})

    # -- routes -------------------------------------------------------------------------------------
    async def _dispatch(self, method: str, path: str, params: dict[str, str], body: Any) -> tuple[int, Any]:
        parts = path.split("/")[2:]  # "/admin/keys/x" -> ["keys", "x"]
        head = parts[0] if parts else ""
        if method == "GET" and head == "openapi.json" and len(parts) == 1:
            return 200, openapi()
        if head == "keys":
            return await self._keys(method, parts[1:], params, body)
        if method == "GET" and len(parts) == 1:
            view = {"overview": self._overview, "spend": self._spend, "routing": self._routing,
                    "reasons": self._reasons, "deployments": self._deployments, "requests": self._requests,
                    "audit": self._audit}.get(head)
            if view is not None:
                return 200, await view(params)
        raise _Reply(404, {"error": {"message": f"no admin route {method} {path}", "type": "invalid_request_error"}})

    def _key_store(self) -> Any:
        if self.registry is None:
            raise _Reply(409, {"error": {"message": "virtual keys are off: set keys.enabled: true",
                                         "type": "invalid_request_error"}})
        return self.registry.store

    async def _keys(self, method: str, rest: list[str], params: dict[str, str], body: Any) -> tuple[int, Any]:
        store = self._key_store()
        if not rest:
            if method == "GET":
                keys = await asyncio.to_thread(store.list, after=params.get("after"),
                                               limit=min(int(params.get("limit", 100)), 500),
                                               include_revoked=params.get("include_revoked") == "true",
                                               search=params.get("q"))
                items = [await self._with_usage(k) for k in keys]
                return 200, {"items": items, "next": keys[-1].id if keys else None}
            if method == "POST":
                key, secret = await asyncio.to_thread(store.create, self._checked(body), actor="admin")
                return 201, {**key.public(), "key": secret}
        elif len(rest) == 1:
            if method == "GET":
                return 200, await self._with_usage(await asyncio.to_thread(store.get, rest[0]))
            if method == "PATCH":
                return 200, (await asyncio.to_thread(store.update, rest[0], self._checked(body), actor="admin")).public()
            if method == "DELETE":
                return 200, (await asyncio.to_thread(store.revoke, rest[0], actor="admin")).public()
        elif len(rest) == 2 and method == "POST":
            if rest[1] == "rotate":
                key, secret = await asyncio.to_thread(store.rotate, rest[0], actor="admin")
                return 200, {**key.public(), "key": secret}
            if rest[1] == "revoke":
                return 200, (await asyncio.to_thread(store.revoke, rest[0], actor="admin")).public()
        raise _Reply(404 if method in ("GET", "POST", "PATCH", "DELETE") else 405,
                     {"error": {"message": f"no admin route {method} /admin/keys/{'/'.join(rest)}",
                                "type": "invalid_request_error"}})

    def _checked(self, body: Any) -> KeySpec:
        spec = _spec(body)
        check_spec(spec, self.router.catalog.models, self.router.catalog.tiers)
        return spec

    async def _with_usage(self, key: Any) -> dict[str, Any]:
        out = key.public()
        out["usage"] = await self.guard.usage(key) if self.guard is not None else []
        return out

    async def _overview(self, params: dict[str, str]) -> Any:
        since, until = LedgerQueries.window(params)
        bucket = params.get("bucket", "hour")
        if bucket not in BUCKETS:
            raise InvalidRequest(f"bucket: one of {', '.join(BUCKETS)}", param="bucket")
        return await asyncio.to_thread(self._db_queries().overview, since, until, bucket)

    async def _spend(self, params: dict[str, str]) -> Any:
        since, until = LedgerQueries.window(params)
        by = params.get("by", "key")
        if by == "bucket":
            return await self._overview(params)
        dim = {"key": "caller", "team": "caller", "model": "model", "tag": "tags"}.get(by)
        if dim is None:
            raise InvalidRequest("by: one of key, team, model, tag, bucket", param="by")
        rows = await asyncio.to_thread(self._db_queries().spend_by, dim, since, until)
        groups: dict[str, list[float]] = {}
        for value, n, cost, base in rows:
            for name in self._group_names(by, value):
                acc = groups.setdefault(name, [0, 0.0, 0.0])
                acc[0] += n
                acc[1] += cost
                acc[2] += base
        items = [{by: name, "requests": int(n), "cost_usd": c, "baseline_cost_usd": b, "savings_usd": b - c}
                 for name, (n, c, b) in sorted(groups.items(), key=lambda kv: -kv[1][1])]
        return {"since": since, "until": until, "by": by, "items": items}

    def _group_names(self, by: str, value: Any) -> list[str]:
        """Keys are grouped by caller id in SQL; teams by the key's team; tags split out of the joined list."""
        if by == "tag":
            return [t for t in (value or "").split(",") if t] or ["(none)"]
        if by == "team":
            key = self.registry.by_caller(value) if self.registry is not None else None
            bound = self.router.settings.limits.teams.get(value or "")
            return [(key.team if key is not None else None) or bound or "(none)"]
        return [value or "(none)"]

    async def _routing(self, params: dict[str, str]) -> Any:
        since, until = LedgerQueries.window(params)
        rows = await asyncio.to_thread(self._db_queries().spend_by, "model", since, until)
        models = self.router.catalog.models
        tiers: dict[str, dict[str, float]] = {}
        items = []
        for model, n, cost, base in rows:
            tier = models[model].tier if model in models else "(unknown)" if model else "(refused)"
            items.append({"model": model or "(refused)", "tier": tier, "requests": int(n), "cost_usd": cost,
                          "baseline_cost_usd": base})
            acc = tiers.setdefault(tier, {"requests": 0, "cost_usd": 0.0})
            acc["requests"] += n
            acc["cost_usd"] += cost
        return {"since": since, "until": until, "models": items,
                "tiers": [{"tier": t, **v} for t, v in sorted(tiers.items(), key=lambda kv: -kv[1]["requests"])]}

    async def _reasons(self, params: dict[str, str]) -> Any:
        since, until = LedgerQueries.window(params)
        return {"since": since, "until": until, "items": await asyncio.to_thread(self._db_queries().reasons, since, until)}

    async def _deployments(self, params: dict[str, str]) -> Any:
        since, until = LedgerQueries.window(params)
        rows = await asyncio.to_thread(self._db_queries().deployments, since, until)
        live = self.router.dispatcher.health.snapshot()  # this replica's breakers
        for row in rows:
            state = live.get(row["deployment"])
            row["breaker"] = state["state"] if state else "closed"
            row["last_error"] = state.get("last_error") if state else None
        return {"since": since, "until": until, "items": rows}

    async def _requests(self, params: dict[str, str]) -> Any:
        before = params.get("before_id")
        return await asyncio.to_thread(self._db_queries().requests, before_id=int(before) if before else None,
                                       limit=int(params.get("limit", 50)), filters=params)

    async def _audit(self, params: dict[str, str]) -> Any:
        before = params.get("before_id")
        return {"items": await asyncio.to_thread(self._key_store().audit_log, before=int(before) if before else None,
                                                 limit=min(int(params.get("limit", 100)), 500))}


def _spec(body: Any) -> KeySpec:
    if not isinstance(body, dict):
        raise InvalidRequest("expected a JSON object describing the key")
    try:
        return KeySpec.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(body)"
        raise InvalidRequest(f"{where}: {first['msg']}", param=where) from None


async def _read_json(receive: Any) -> Any:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_ADMIN_BODY:
            raise InvalidRequest("admin request body too large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    raw = b"".join(chunks)
    if not raw:
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None


async def _send(send: Send, status: int, payload: Any) -> None:
    await send({"type": "http.response.start", "status": status, "headers": JSON})
    await send({"type": "http.response.body", "body": orjson.dumps(payload)})


__all__ = ["AdminConsole"]
