"""Which value of each scope a request is counted under, and who the request is.

Identity comes from the authenticated gateway key. ``limits.users``, ``teams`` and ``projects`` bind a key
(by caller id) to a user, team or project, and a bound key is counted under its binding whatever the body
says: a bound user budget applies with or without a ``user`` field, and a conflicting label cannot move the
spend to someone else's counter. Client labels (the body's ``user``, ``team:<name>`` / ``project:<name>``
tags) may only *narrow*: on a key without a binding a label is counted within that key, as
``<caller id>/<label>``, so it can never reach an identity's counter or another key's. Without gateway keys
there is no caller and nothing is authenticated, so labels are counted as they are.

Every value becomes part of a store key; :func:`key_part` caps its size, so what the limiters keep per label
is fixed whatever a client sends.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..types import ModelSpec, RequestFeatures

# Longer values are replaced by a digest in store keys (error messages still show the value).
MAX_KEY_PART_CHARS = 64


def key_part(value: str) -> str:
    """``value`` itself when short, else ``~`` + a 128-bit digest: a store key has a fixed maximum size."""
    if len(value) <= MAX_KEY_PART_CHARS:
        return value
    return "~" + hashlib.blake2b(value.encode(), digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class Bindings:
    """Caller id -> user, team and project, from ``limits.users`` / ``teams`` / ``projects``."""

    users: Mapping[str, str] = field(default_factory=dict)
    teams: Mapping[str, str] = field(default_factory=dict)
    projects: Mapping[str, str] = field(default_factory=dict)


def _labelled(caller: str | None, labels: tuple[str, ...]) -> tuple[str, ...]:
    if caller is None:
        return labels
    return tuple(f"{caller}/{label}" for label in labels)


def scope_values(scope: str, features: RequestFeatures, model: ModelSpec | None, bindings: Bindings) -> tuple[str, ...]:
    """The values of ``scope`` this request counts against (none when it has none)."""
    if scope == "global":
        return ("all",)
    caller = features.caller
    if scope == "caller":
        return (caller,) if caller else ()
    if scope == "user":
        bound = bindings.users.get(caller) if caller else None
        if bound is not None:
            return (bound,)
        return _labelled(caller, (features.user,)) if features.user else ()
    if scope in ("team", "project"):
        bound = (bindings.teams if scope == "team" else bindings.projects).get(caller) if caller else None
        if bound is not None:
            return (bound,)
        prefix = f"{scope}:"
        return _labelled(caller, tuple(dict.fromkeys(t[len(prefix):] for t in features.tags if t.startswith(prefix))))
    if scope == "tag":
        return features.tags
    if model is None:
        return ()
    return (model.id,) if scope == "model" else (model.provider,)
