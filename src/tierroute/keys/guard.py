"""The limits guard, extended with what each virtual key carries.

A virtual key's identity (user, team, project) binds its requests exactly as ``limits.users/teams/projects``
bind a static key (budgets/scopes.py): a bound key is counted under its binding whatever the body says. Its
budgets and rate limits are the config's rule types, applied to its own requests on top of ``limits:``
(``scope: caller`` is the key itself; rules landing on one counter keep the tightest ceiling). Its allowed
models and tiers make every other model unavailable to its requests, so ``auto`` and tiers route among
the allowed ones, and naming another model is refused with 403.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from .._exceptions import PermissionDenied
from ..budgets.guard import Hold, Limit, LimitsGuard, compile_limits
from ..budgets.scopes import Bindings
from ..budgets.settings import REQUEST_SCOPES, LimitsSettings
from ..budgets.windows import units_to_usd
from ..catalog import Catalog
from ..journal import Journal
from ..state.base import StateStore
from ..types import Decision, ModelSpec, RequestFeatures, StateSnapshot
from .registry import KeyRegistry
from .store import VirtualKey


class _Bound(Mapping[str, str]):
    """Caller id -> one binding: a virtual key's own field first, then the config's static binding."""

    def __init__(self, registry: KeyRegistry, field: str, static: Mapping[str, str]) -> None:
        self._registry, self._field, self._static = registry, field, static

    def __getitem__(self, caller: str) -> str:
        key = self._registry.by_caller(caller)
        value = getattr(key, self._field) if key is not None else None
        if value is not None:
            return value
        return self._static[caller]

    def __iter__(self) -> Iterator[str]:
        return iter(self._static)

    def __len__(self) -> int:
        return len(self._static)


class KeyGuard(LimitsGuard):
    def __init__(self, settings: LimitsSettings, store: StateStore, registry: KeyRegistry, catalog: Catalog, *,
                 clock: Callable[[], float] = time.time, journal: Journal | None = None) -> None:
        super().__init__(settings, store, clock=clock, journal=journal)
        self.registry = registry
        self._catalog = catalog
        self._bindings = Bindings(users=_Bound(registry, "user", settings.users),
                                  teams=_Bound(registry, "team", settings.teams),
                                  projects=_Bound(registry, "project", settings.projects))
        # Per key (and version of it): its compiled limits, and the models it may not use. Bounded by the
        # number of keys; an entry is replaced when the key changes.
        self._compiled: dict[str, tuple[int, tuple[Limit, ...], frozenset[str]]] = {}
        # ``_counters`` tells the budget-pressure call from admission by identity; two empty tuples are the same
        # object, so the pressure list gets an identity of its own.
        self._request_budgets = list(self._request_budgets)  # type: ignore[assignment]
        # Without ``limits:`` a request from a key with no rules of its own costs nothing here (no store calls).
        self._config_limits = settings.enabled

    def _for(self, key: VirtualKey) -> tuple[tuple[Limit, ...], frozenset[str]]:
        cached = self._compiled.get(key.id)
        if cached is None or cached[0] != key.seq:
            limits = compile_limits(LimitsSettings(budgets=list(key.budgets), rate_limits=list(key.rate_limits)))
            denied = frozenset(m.id for m in self._catalog.models.values() if not _allowed(key, m))
            cached = (key.seq, limits, denied)
            if len(self._compiled) > 2 * len(self.registry) + 1000:
                self._compiled.clear()  # entries of revoked keys: rebuilt on demand for the live ones
            self._compiled[key.id] = cached
        return cached[1], cached[2]

    def _counters(self, limits: Sequence[Limit], features: RequestFeatures, model: ModelSpec | None,
                  now: float) -> list[Any]:
        key = self.registry.by_caller(features.caller)
        if key is not None:
            own, _ = self._for(key)
            if limits is self._request_budgets:  # budget pressure: only budgets known before routing
                own = tuple(x for x in own if x.kind == "budget" and x.scope in REQUEST_SCOPES)
            limits = (*limits, *own)
        return super()._counters(limits, features, model, now)

    def _unlimited(self, key: VirtualKey | None) -> bool:
        return not self._config_limits and (key is None or not (key.budgets or key.rate_limits))

    async def snapshot(self, features: RequestFeatures, body: Any) -> StateSnapshot | None:
        key = self.registry.by_caller(features.caller)
        if key is None or (key.models is None and key.tiers is None):
            return None if self._unlimited(key) else await super().snapshot(features, body)
        _, denied = self._for(key)
        requested = features.requested_model
        if requested in denied:
            raise PermissionDenied(f"this key may not use model {requested!r}", param="model")
        if key.tiers is not None and requested in self._catalog.tiers and requested not in key.tiers:
            raise PermissionDenied(f"this key may not use tier {requested!r}; allowed: {', '.join(sorted(key.tiers))}",
                                   param="model")
        state = (None if self._unlimited(key) else await super().snapshot(features, body)) or StateSnapshot()
        return replace(state, unavailable=state.unavailable | denied)

    async def admit(self, features: RequestFeatures, decision: Decision, request_id: str) -> Hold | None:
        key = self.registry.by_caller(features.caller)
        if key is not None and not _allowed(key, decision.chosen.model):
            raise PermissionDenied(f"this key may not use model {decision.chosen.model.id!r}", param="model")
        if self._unlimited(key):
            return None
        return await super().admit(features, decision, request_id)

    async def usage(self, key: VirtualKey) -> list[dict[str, Any]]:
        """Each of the key's budgets: its counter now, its ceiling and what is left (for the console)."""
        own, _ = self._for(key)
        now = self._clock()
        bound = {"caller": key.caller, "user": key.user, "team": key.team, "project": key.project}
        rows: list[tuple[Any, Limit, str]] = []
        for lim in own:
            value = bound.get(lim.scope) if lim.match == "*" else lim.match
            if lim.kind == "budget" and value:
                rows.append((self._counter(lim, value, now)[0], lim, value))
        if not rows:
            return []
        levels = await self.store.levels([c.key for c, _, _ in rows])
        out = []
        for (counter, lim, value), level in zip(rows, levels):
            to = units_to_usd if lim.unit == "usd" else float
            out.append({"scope": lim.scope, "value": value, "window": lim.window, "unit": lim.unit,
                        "limit": to(counter.limit), "used": to(level), "remaining": to(max(0, counter.limit - level))})
        return out

    async def aclose(self) -> None:
        await super().aclose()
        self.registry.close()


def _allowed(key: VirtualKey, model: ModelSpec) -> bool:
    return ((key.models is None or model.id in key.models)
            and (key.tiers is None or model.tier in key.tiers))
