"""Gateway keys named in ``limits:`` resolved to caller ids, once, when the configuration is read.

A key may be written wherever ``limits:`` names a caller: as the ``match`` of a ``caller`` budget or rate
limit, and as a key of ``users``, ``teams``, ``projects`` and ``max_cost_usd_by_caller``, usually as
``${ENV_VAR}`` (or as its caller id, ``key-`` + 12 hex digits, as the ledger shows it). Each is replaced by
its caller id here; one that names none of ``server.api_keys`` is refused, because the gateway only ever
sees those keys' ids and the limit would silently never apply. Messages name the field, never the key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._exceptions import ConfigError
from ..identity import as_caller_id, caller_id
from .settings import LimitsSettings

# The mappings of ``limits:`` whose keys are gateway keys.
KEYED_MAPPINGS = ("users", "teams", "projects", "max_cost_usd_by_caller")


def resolve_keys(limits: LimitsSettings, api_keys: Sequence[str], source: str) -> LimitsSettings:
    """``limits`` with every key it names replaced by its caller id; ConfigError for a key that is not a gateway key."""
    known = frozenset(caller_id(k) for k in api_keys)

    def resolve(written: str, field: str) -> str:
        resolved = as_caller_id(written)
        if resolved in known:
            return resolved
        if not known:
            why = "server.api_keys is empty, so no request has a caller and this would never apply"
        else:
            why = f"it names none of the {len(known)} keys in server.api_keys (it hashes to {resolved})"
        raise ConfigError(f"{source}: {field}: expected a gateway key (usually ${{ENV_VAR}}) or its caller id; {why}",
                          param=field)

    def rules(name: str, items: Sequence[Any]) -> list[Any]:
        return [rule.model_copy(update={"match": resolve(rule.match, f"limits.{name}[{i}].match")})
                if rule.scope == "caller" and rule.match != "*" else rule for i, rule in enumerate(items)]

    def mapping(name: str, items: Mapping[str, Any]) -> dict[str, Any]:
        return {resolve(key, f"limits.{name}"): value for key, value in items.items()}

    update: dict[str, Any] = {"budgets": rules("budgets", limits.budgets),
                              "rate_limits": rules("rate_limits", limits.rate_limits)}
    update.update({name: mapping(name, getattr(limits, name)) for name in KEYED_MAPPINGS})
    return limits.model_copy(update=update)
