"""Virtual keys in the ledger's database: created, updated, rotated and revoked, each change audited.

Only the SHA-256 of a key is stored, with its first characters for display; the key itself is returned
once, by ``create`` and ``rotate``. Every change takes the next value of ``key_sequence`` in the same
transaction, so a replica that has seen sequence N fetches exactly the rows changed since
(``changes_since``). PostgreSQL serialises the sequence row, so rows become visible in sequence order.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from .._exceptions import InvalidRequest, ModelNotFound
from ..budgets.settings import BudgetRule, RateLimitRule
from .db import Database
from .settings import KeySpec

KEY_PREFIX = "tr-"
DISPLAY_CHARS = 10  # "tr-" and 7 characters of the key: enough to tell keys apart, far too few to guess it


def hash_key(secret: str | bytes) -> str:
    return hashlib.sha256(secret.encode() if isinstance(secret, str) else secret).hexdigest()


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class VirtualKey:
    id: str
    key_hash: str
    prefix: str
    name: str | None
    owner: str | None
    user: str | None
    team: str | None
    project: str | None
    models: frozenset[str] | None
    tiers: frozenset[str] | None
    budgets: tuple[BudgetRule, ...]
    rate_limits: tuple[RateLimitRule, ...]
    metadata: dict[str, Any]
    expires_at: float | None
    created_at: float
    updated_at: float
    revoked_at: float | None
    seq: int

    @property
    def caller(self) -> str:
        """The caller id the ledger and the limits see: stable across rotation, never the key."""
        return f"vk-{self.id}"

    def active(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def public(self) -> dict[str, Any]:
        """What the admin API shows: everything but the hash."""
        return {"id": self.id, "caller": self.caller, "prefix": self.prefix, "name": self.name, "owner": self.owner,
                "user": self.user, "team": self.team, "project": self.project,
                "models": sorted(self.models) if self.models is not None else None,
                "tiers": sorted(self.tiers) if self.tiers is not None else None,
                "budgets": [b.model_dump(exclude_none=True) for b in self.budgets],
                "rate_limits": [r.model_dump(exclude_none=True) for r in self.rate_limits],
                "metadata": self.metadata, "expires_at": self.expires_at, "created_at": self.created_at,
                "updated_at": self.updated_at, "revoked_at": self.revoked_at,
                "status": "revoked" if self.revoked_at is not None else
                ("expired" if self.expires_at is not None and time.time() >= self.expires_at else "active")}


_COLUMNS = ("id, key_hash, prefix, name, owner, user_id, team, project, spec, expires_at, created_at, updated_at, "
            "revoked_at, seq")


def _row_to_key(row: tuple[Any, ...]) -> VirtualKey:
    (id_, key_hash, prefix, name, owner, user, team, project, spec, expires, created, updated, revoked, seq) = row
    extra = orjson.loads(spec)
    models, tiers = extra.get("models"), extra.get("tiers")
    return VirtualKey(id=id_, key_hash=key_hash, prefix=prefix, name=name, owner=owner, user=user, team=team,
                      project=project, models=frozenset(models) if models is not None else None,
                      tiers=frozenset(tiers) if tiers is not None else None,
                      budgets=tuple(BudgetRule(**b) for b in extra.get("budgets") or ()),
                      rate_limits=tuple(RateLimitRule(**r) for r in extra.get("rate_limits") or ()),
                      metadata=extra.get("metadata") or {}, expires_at=expires, created_at=created,
                      updated_at=updated, revoked_at=revoked, seq=int(seq))


def _spec_json(spec: KeySpec) -> str:
    return orjson.dumps({
        "models": spec.models, "tiers": spec.tiers,
        "budgets": [b.model_dump(exclude_none=True) for b in spec.budgets or ()],
        "rate_limits": [r.model_dump(exclude_none=True) for r in spec.rate_limits or ()],
        "metadata": spec.metadata or {}}).decode()


def _spec_of(key: VirtualKey) -> KeySpec:
    return KeySpec(name=key.name, owner=key.owner, user=key.user, team=key.team, project=key.project,
                   models=sorted(key.models) if key.models is not None else None,
                   tiers=sorted(key.tiers) if key.tiers is not None else None, budgets=list(key.budgets),
                   rate_limits=list(key.rate_limits), expires_at=key.expires_at, metadata=key.metadata)


class KeyStore:
    """CRUD over ``virtual_keys``; every change is written to ``admin_audit`` in the same transaction."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self._clock = clock

    def _next_seq(self, run: Callable[..., list[tuple[Any, ...]]]) -> int:
        return int(run("UPDATE key_sequence SET value = value + 1 WHERE id = 1 RETURNING value")[0][0])

    @staticmethod
    def _audit(run: Callable[..., list[tuple[Any, ...]]], now: float, actor: str, action: str, target: str | None,
               detail: dict[str, Any] | None) -> None:
        run("INSERT INTO admin_audit (ts, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
            (now, actor, action, target, orjson.dumps(detail).decode() if detail is not None else None))

    def audit(self, actor: str, action: str, target: str | None = None, detail: dict[str, Any] | None = None) -> None:
        with self.db.transaction() as run:
            self._audit(run, self._clock(), actor, action, target, detail)

    def create(self, spec: KeySpec, *, actor: str) -> tuple[VirtualKey, str]:
        """The new key and its secret (shown this once)."""
        secret, now, key_id = new_secret(), self._clock(), uuid.uuid4().hex[:12]
        with self.db.transaction() as run:
            seq = self._next_seq(run)
            run(f"INSERT INTO virtual_keys ({_COLUMNS}) VALUES ({', '.join('?' * 14)})",
                (key_id, hash_key(secret), secret[:DISPLAY_CHARS], spec.name, spec.owner, spec.user, spec.team,
                 spec.project, _spec_json(spec), spec.expires_at, now, now, None, seq))
            self._audit(run, now, actor, "key.create", key_id, spec.model_dump(exclude_none=True, mode="json"))
        return self.get(key_id), secret

    def get(self, key_id: str) -> VirtualKey:
        rows = self.db.query(f"SELECT {_COLUMNS} FROM virtual_keys WHERE id = ?", (key_id,))
        if not rows:
            raise ModelNotFound(f"no virtual key with id {key_id!r}", param="id")
        return _row_to_key(rows[0])

    def update(self, key_id: str, changes: KeySpec, *, actor: str) -> VirtualKey:
        """Set the fields ``changes`` sets; the others keep their values."""
        current = self.get(key_id)
        if current.revoked_at is not None:
            raise InvalidRequest(f"virtual key {key_id} is revoked; create a new one", param="id")
        merged = KeySpec.model_validate({**_spec_of(current).model_dump(), **changes.model_dump(exclude_unset=True)})
        now = self._clock()
        with self.db.transaction() as run:
            seq = self._next_seq(run)
            run("UPDATE virtual_keys SET name = ?, owner = ?, user_id = ?, team = ?, project = ?, spec = ?, "
                "expires_at = ?, updated_at = ?, seq = ? WHERE id = ?",
                (merged.name, merged.owner, merged.user, merged.team, merged.project, _spec_json(merged),
                 merged.expires_at, now, seq, key_id))
            self._audit(run, now, actor, "key.update", key_id, changes.model_dump(exclude_unset=True, mode="json"))
        return self.get(key_id)

    def rotate(self, key_id: str, *, actor: str) -> tuple[VirtualKey, str]:
        """A new secret for the same key (same id, caller, budgets and spend); the old secret stops working."""
        current = self.get(key_id)
        if current.revoked_at is not None:
            raise InvalidRequest(f"virtual key {key_id} is revoked; create a new one", param="id")
        secret, now = new_secret(), self._clock()
        with self.db.transaction() as run:
            seq = self._next_seq(run)
            run("UPDATE virtual_keys SET key_hash = ?, prefix = ?, updated_at = ?, seq = ? WHERE id = ?",
                (hash_key(secret), secret[:DISPLAY_CHARS], now, seq, key_id))
            self._audit(run, now, actor, "key.rotate", key_id, {"prefix": secret[:DISPLAY_CHARS]})
        return self.get(key_id), secret

    def revoke(self, key_id: str, *, actor: str) -> VirtualKey:
        current = self.get(key_id)
        if current.revoked_at is not None:
            return current
        now = self._clock()
        with self.db.transaction() as run:
            seq = self._next_seq(run)
            run("UPDATE virtual_keys SET revoked_at = ?, updated_at = ?, seq = ? WHERE id = ?", (now, now, seq, key_id))
            self._audit(run, now, actor, "key.revoke", key_id, None)
        return self.get(key_id)

    def list(self, *, after: str | None = None, limit: int = 100, include_revoked: bool = False,
             search: str | None = None) -> list[VirtualKey]:
        """Keys ordered by id, from after ``after`` (keyset pagination)."""
        where, params = ["id > ?"], [after or ""]
        if not include_revoked:
            where.append("revoked_at IS NULL")
        if search:
            where.append("(name LIKE ? OR owner LIKE ? OR team LIKE ? OR user_id LIKE ? OR prefix LIKE ?)")
            params.extend([f"%{search}%"] * 5)
        rows = self.db.query(f"SELECT {_COLUMNS} FROM virtual_keys WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
                             (*params, limit))
        return [_row_to_key(r) for r in rows]

    def changes_since(self, seq: int) -> list[VirtualKey]:
        rows = self.db.query(f"SELECT {_COLUMNS} FROM virtual_keys WHERE seq > ? ORDER BY seq", (seq,))
        return [_row_to_key(r) for r in rows]

    def audit_log(self, *, before: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.db.query("SELECT id, ts, actor, action, target, detail FROM admin_audit WHERE id < ? "
                             "ORDER BY id DESC LIMIT ?", (before if before is not None else 2**62, limit))
        return [{"id": r[0], "ts": r[1], "actor": r[2], "action": r[3], "target": r[4],
                 "detail": orjson.loads(r[5]) if r[5] else None} for r in rows]
