"""The limits guard: budgets, rate limits and runaway protection over one :class:`StateStore`.

Per request it makes at most three store calls, each one atomic step: ``seen`` + ``levels`` before routing
(runaway count and budget pressure), ``reserve`` on admission (every applicable counter at once: all or
nothing) and ``settle`` at the end (release the hold, add the real amounts). A stream that outgrows its
reservation asks for more through :meth:`LimitsGuard.meter`, and is cut when there is none.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .._exceptions import LimitExceeded
from .._exceptions import StateUnavailable
from ..journal import Journal
from ..state.base import Counter, Refusal, StateStore
from ..types import Decision, ModelSpec, RequestFeatures, StateSnapshot, Usage
from .runaway import client_request_id, fingerprint
from .scopes import Bindings, key_part, scope_values
from .settings import REQUEST_SCOPES, LimitsSettings
from .settlement import Settlements
from .windows import bucket, describe_seconds, units_to_usd, usd_to_units

log = logging.getLogger("tierroute.budgets")

UNIT_NAMES = {"usd": "USD", "tok": "tokens", "req": "requests"}


@dataclass(frozen=True, slots=True)
class Limit:
    """One compiled limit: a scope, a window, a unit and the ceiling in integer units."""

    kind: str  # "budget" | "rate limit" | "deployment limit"
    scope: str
    match: str
    window: str
    unit: str  # "usd" | "tok" | "req"
    limit: int

    def label(self, value: str) -> str:
        return f"{self.kind} {self.scope}={value} ({UNIT_NAMES[self.unit]} per {self.window})"

    def amount(self, units: float) -> str:
        return f"${units_to_usd(units):.6f}" if self.unit == "usd" else f"{int(units)} {UNIT_NAMES[self.unit]}"


def compile_limits(settings: LimitsSettings) -> tuple[Limit, ...]:
    limits: list[Limit] = []
    for rule in settings.budgets:
        if rule.usd is not None:
            limits.append(Limit("budget", rule.scope, rule.match, rule.window, "usd", usd_to_units(rule.usd)))
        if rule.tokens is not None:
            limits.append(Limit("budget", rule.scope, rule.match, rule.window, "tok", rule.tokens))
    for rate in settings.rate_limits:
        if rate.requests_per_minute is not None:
            limits.append(Limit("rate limit", rate.scope, rate.match, "minute", "req", rate.requests_per_minute))
        if rate.tokens_per_minute is not None:
            limits.append(Limit("rate limit", rate.scope, rate.match, "minute", "tok", rate.tokens_per_minute))
    return tuple(limits)


@dataclass(slots=True)
class Hold:
    """What ``admit`` reserved for one request; handed back to ``meter`` and ``settle``."""

    id: str
    counters: tuple[Counter, ...]
    limits: tuple[tuple[Limit, str, float | None], ...]  # (limit, scope value, window end) per counter
    model: ModelSpec
    prompt_tokens: int
    reserved_usd: int
    reserved_tokens: int
    step_usd: int  # headroom asked for beyond a stream's need, so it does not round-trip every chunk
    step_tokens: int
    max_completion: int = 0  # what the server may send at most: a stream is never metered past it
    settled: bool = field(default=False)


class LimitsGuard:
    """A :class:`~tierroute.guards.Guard` enforcing ``limits:``. ``clock`` is epoch seconds (injectable)."""

    def __init__(self, settings: LimitsSettings, store: StateStore, *, clock: Callable[[], float] = time.time,
                 journal: Journal | None = None) -> None:
        self.settings = settings
        self.store = store
        self._clock = clock
        self.settlements = Settlements(store, journal=journal, retry_every_seconds=settings.state.retry_after_seconds,
                                       clock=clock)
        self._limits = compile_limits(settings)
        self._bindings = Bindings(users=settings.users, teams=settings.teams, projects=settings.projects)
        self._request_budgets = tuple(x for x in self._limits if x.kind == "budget" and x.scope in REQUEST_SCOPES)
        self._hold_seconds = settings.state.reservation_ttl_seconds
        self._refresh = settings.pressure_refresh_seconds
        self._level_cache: dict[str, tuple[float, int]] = {}
        self._cached_budgets: dict[str, Limit] = {}  # level-cache key -> the (tightest) limit it measures
        self._deployments = {
            dep: tuple(Limit("deployment limit", "deployment", dep, "minute", unit, value)
                       for unit, value in (("req", lim.requests_per_minute), ("tok", lim.tokens_per_minute))
                       if value is not None)
            for dep, lim in settings.deployments.items()
        }

    # -- counters ------------------------------------------------------------------------------------
    def _counters(self, limits: Sequence[Limit], features: RequestFeatures, model: ModelSpec | None,
                  now: float) -> list[tuple[Counter, Limit, str, float | None]]:
        """One entry per counter. Rules that land on the same counter (same scope value, unit and window, e.g.
        "every caller $1/day" and "this caller $0.0025/day") are one quantity with two ceilings: the request
        is counted once, against the tightest."""
        out: dict[str, tuple[Counter, Limit, str, float | None]] = {}
        for lim in limits:
            for value in scope_values(lim.scope, features, model, self._bindings):
                if lim.match != "*" and value != lim.match:
                    continue
                entry = self._counter(lim, value, now)
                kept = out.get(entry[0].key)
                if kept is None or entry[0].limit < kept[0].limit:
                    out[entry[0].key] = entry
        return list(out.values())

    def _counter(self, lim: Limit, value: str, now: float) -> tuple[Counter, Limit, str, float | None]:
        bucket_id, ends = bucket(lim.window, now)
        # Keep a window's counter a little past its end, so late settlements still find it.
        expires = None if ends is None else ends + self._hold_seconds
        key = f"{lim.scope}={key_part(value)}:{lim.unit}:{lim.window}:{bucket_id}"
        return Counter(key=key, limit=lim.limit, expires_at=expires), lim, value, ends

    def _estimate(self, features: RequestFeatures, model: ModelSpec) -> tuple[int, int]:
        """(nano-USD, tokens) this request may cost: prompt tokens plus max_tokens (or the default)."""
        if model.mode == "embedding":
            completion = 0  # an embedding has no completion
        else:
            completion = min(features.max_tokens or self.settings.default_completion_tokens, model.max_output_tokens)
        return usd_to_units(model.cost_usd(features.prompt_tokens, completion)), features.prompt_tokens + completion

    # -- Guard ---------------------------------------------------------------------------------------
    async def snapshot(self, features: RequestFeatures, body: Any) -> StateSnapshot | None:
        """Budget pressure, plus runaway detection, which needs the raw conversation and the client's id."""
        extra: dict[str, Any] = {}
        runaway = self.settings.runaway
        if runaway.enabled:
            now = self._clock()
            fp = fingerprint(body, last_messages=runaway.last_messages, near_identical=runaway.near_identical)
            who = self._who(features)
            member = key_part(client_request_id(body) or uuid.uuid4().hex)
            count = await self.store.seen(f"run:{key_part(who)}:{fp}", member, now=now,
                                          window_seconds=runaway.window_seconds)
            if count > runaway.max_repeats:
                why = (f"the same request was sent {count} times within {runaway.window_seconds:g} s by {who} "
                       f"(limit {runaway.max_repeats})")
                if runaway.action == "refuse":
                    raise LimitExceeded(f"runaway protection: {why}; is an agent stuck in a loop? Change the request "
                                        "or wait for the window to pass", scope=f"runaway {who}", remaining=0,
                                        reset_seconds=runaway.window_seconds,
                                        details={"kind": "runaway", "count": count, "limit": runaway.max_repeats})
                extra["runaway"] = why
        return await self._pressure(features, extra)

    @staticmethod
    def _who(features: RequestFeatures) -> str:
        session = next((t[len("session:"):] for t in features.tags if t.startswith("session:")), None)
        parts = [f"caller={features.caller}" if features.caller else "", f"user={features.user}" if features.user else "",
                 f"session={session}" if session else ""]
        return ",".join(p for p in parts if p) or "anonymous"

    async def _pressure(self, features: RequestFeatures, extra: dict[str, Any]) -> StateSnapshot | None:
        ceiling = self.settings.max_cost_usd_by_caller.get(features.caller or "", self.settings.default_max_cost_usd)
        if ceiling is not None:
            extra["max_cost_usd"] = ceiling
        pressure, scope = 0.0, None
        now = self._clock()
        counters = self._counters(self._request_budgets, features, None, now)
        if counters:
            levels = await self._cached_levels([c.key for c, *_ in counters], now)
            known = self._cached_budgets
            for counter, lim, _, _ in counters:
                if counter.key not in known:
                    known[counter.key] = lim  # shared objects only: no memory per label beyond the entry
            for (counter, lim, value, _), level in zip(counters, levels):
                fraction = level / counter.limit
                if fraction > pressure:
                    pressure, scope = fraction, lim.label(value)
        if not extra and scope is None:
            return None
        extra["pressure_threshold"] = self.settings.pressure_threshold
        return StateSnapshot(budget_pressure=min(pressure, 1.0), budget_scope=scope, extra=extra)

    async def _cached_levels(self, keys: list[str], now: float) -> list[int]:
        """Levels for budget pressure. Pressure only steers routing, so a level up to
        ``pressure_refresh_seconds`` old will do (this replica's own changes are applied at once); this
        saves a store round trip on most requests. Admission itself always checks the store atomically."""
        cache = self._level_cache
        stale = [k for k in keys if k not in cache or now - cache[k][0] >= self._refresh]
        if stale:
            if len(cache) > 10_000:
                cache.clear()
                self._cached_budgets.clear()
            for key, level in zip(stale, await self.store.levels(stale)):
                cache[key] = (now, level)
        return [cache[k][1] for k in keys]

    def budget_remaining(self) -> list[tuple[str, str, str, str, float]]:
        """(scope, value, unit, window, remaining) of each budget in the level cache, the newest window of each:
        the metrics gauge, read at scrape time without a store call."""
        newest: dict[tuple[str, str, str, str], tuple[float, float]] = {}
        for key, lim in list(self._cached_budgets.items()):
            cached = self._level_cache.get(key)
            if cached is None:
                continue
            value = key.rsplit(":", 3)[0].partition("=")[2]  # the scope value as the key holds it (key_part)
            ident = (lim.scope, value, UNIT_NAMES[lim.unit], lim.window)
            if ident in newest and newest[ident][0] > cached[0]:
                continue
            left = max(0, lim.limit - cached[1])
            newest[ident] = (cached[0], units_to_usd(left) if lim.unit == "usd" else float(left))
        return [(*ident, left) for ident, (_, left) in newest.items()]

    def _adjust_cached(self, counters: Sequence[Counter], amounts: Sequence[int]) -> None:
        for counter, amount in zip(counters, amounts):
            cached = self._level_cache.get(counter.key)
            if cached is not None:
                self._level_cache[counter.key] = (cached[0], cached[1] + amount)

    async def admit(self, features: RequestFeatures, decision: Decision, request_id: str) -> Hold | None:
        await self.settlements.retry()  # settlements the store could not take before; nothing when none
        now = self._clock()
        model = decision.chosen.model
        entries = self._counters(self._limits, features, model, now)
        if not entries:
            return None
        usd, tokens = self._estimate(features, model)
        amounts = [usd if lim.unit == "usd" else tokens if lim.unit == "tok" else 1 for _, lim, _, _ in entries]
        counters = tuple(c for c, *_ in entries)
        refusal = await self.store.reserve(request_id, counters, amounts, now=now, hold_seconds=self._hold_seconds)
        if refusal is not None:
            raise self._refused(entries, amounts, refusal, now, cut=False)
        self._adjust_cached(counters, amounts)
        return Hold(id=request_id, counters=counters, limits=tuple((lim, v, e) for _, lim, v, e in entries),
                    model=model, prompt_tokens=features.prompt_tokens, reserved_usd=usd, reserved_tokens=tokens,
                    step_usd=max(usd // 8, 1), step_tokens=max(tokens // 8, 1),
                    max_completion=min(features.max_tokens or model.max_output_tokens, model.max_output_tokens))

    def _refused(self, entries: Sequence[tuple[Counter, Limit, str, float | None]], amounts: Sequence[int],
                 refusal: Refusal, now: float, *, cut: bool) -> LimitExceeded:
        counter, lim, value, ends = entries[refusal.index]
        remaining = max(0, counter.limit - refusal.level)
        reset = None if ends is None else max(0.0, ends - now)
        when = "never resets" if reset is None else (
            f"resets in {describe_seconds(reset)} (at {datetime.fromtimestamp(ends, UTC):%Y-%m-%dT%H:%M:%SZ})")
        asked = amounts[refusal.index]
        if cut:
            message = (f"{lim.label(value)} exhausted while streaming: {lim.amount(remaining)} left of "
                       f"{lim.amount(counter.limit)}; the stream was cut; {when}")
        else:
            message = (f"{lim.label(value)} exceeded: {lim.amount(remaining)} left of {lim.amount(counter.limit)}, "
                       f"this request may need {lim.amount(asked)}; {when}")
        scale = units_to_usd if lim.unit == "usd" else float
        return LimitExceeded(message, scope=lim.label(value), remaining=scale(remaining), reset_seconds=reset,
                             details={"kind": lim.kind, "unit": UNIT_NAMES[lim.unit], "window": lim.window,
                                      "limit": scale(counter.limit), "requested": scale(asked)})

    async def meter(self, token: Hold | None, model: ModelSpec, completion_tokens: int) -> None:
        """Called as a stream grows: reserve more when it outruns its hold, cut it (LimitExceeded) when none is left.

        The completion is capped at what the server may send (``max_tokens``), so a stream admitted with
        ``max_tokens`` is never cut. Past its hold it asks for the difference plus an eighth of the original
        hold (never beyond the cap); if that is refused, for the difference alone; only if that is refused
        too is the stream cut.
        """
        if token is None or token.settled:
            return
        if token.max_completion:
            completion_tokens = min(completion_tokens, token.max_completion)
        usd = usd_to_units(model.cost_usd(token.prompt_tokens, completion_tokens))
        tokens = token.prompt_tokens + completion_tokens
        if usd <= token.reserved_usd and tokens <= token.reserved_tokens:
            return
        need_usd, need_tokens = max(usd - token.reserved_usd, 0), max(tokens - token.reserved_tokens, 0)
        entries = [(c, lim, v, e) for c, (lim, v, e) in zip(token.counters, token.limits) if lim.unit in ("usd", "tok")]
        if not entries:
            token.reserved_usd, token.reserved_tokens = max(usd, token.reserved_usd), max(tokens, token.reserved_tokens)
            return
        cap_completion = token.max_completion or completion_tokens
        cap_usd = usd_to_units(model.cost_usd(token.prompt_tokens, cap_completion)) - token.reserved_usd
        cap_tokens = token.prompt_tokens + cap_completion - token.reserved_tokens
        ask_usd = max(need_usd, min(need_usd + token.step_usd, cap_usd)) if need_usd else 0
        ask_tokens = max(need_tokens, min(need_tokens + token.step_tokens, cap_tokens)) if need_tokens else 0
        counters = [c for c, *_ in entries]
        now = self._clock()
        for more_usd, more_tokens in ((ask_usd, ask_tokens), (need_usd, need_tokens)):
            amounts = [more_usd if lim.unit == "usd" else more_tokens for _, lim, _, _ in entries]
            refusal = await self.store.reserve(token.id, counters, amounts, now=now, hold_seconds=self._hold_seconds)
            if refusal is None:
                token.reserved_usd += more_usd
                token.reserved_tokens += more_tokens
                return
            if (more_usd, more_tokens) == (need_usd, need_tokens):
                break
        raise self._refused(entries, amounts, refusal, now, cut=True)

    async def settle(self, token: Hold | None, *, cost_usd: float, usage: Usage, ok: bool) -> None:
        if token is None or token.settled:
            return
        token.settled = True
        real = {"usd": usd_to_units(cost_usd), "tok": usage.total_tokens, "req": 1}
        amounts = [real[lim.unit] for lim, _, _ in token.limits]
        reserved = {"usd": token.reserved_usd, "tok": token.reserved_tokens, "req": 1}
        self._adjust_cached(token.counters, [real[lim.unit] - reserved[lim.unit] for lim, _, _ in token.limits])
        await self.settlements.settle(token.id, token.counters, amounts)  # journaled, retried, never raises

    @property
    def limited_deployments(self) -> frozenset[str]:
        """The deployment ids with a configured limit (``limits.deployments``)."""
        return frozenset(self._deployments)

    async def try_acquire(self, deployment_id: str, tokens: int) -> bool:
        """Count one request of ``tokens`` against a deployment's configured per-minute limits.

        True when it fits (and is now counted), False when the deployment is at its limit this minute, so
        the dispatcher can pick another deployment before the provider answers 429. Deployments without
        limits always fit; if the state store is unreachable this says True (the provider still protects itself).
        """
        limits = self._deployments.get(deployment_id)
        if not limits:
            return True
        now = self._clock()
        counters = [self._counter(lim, deployment_id, now)[0] for lim in limits]
        amounts = [1 if lim.unit == "req" else tokens for lim in limits]
        try:
            return await self.store.reserve(None, counters, amounts, now=now, hold_seconds=0) is None
        except StateUnavailable:
            return True

    async def aclose(self) -> None:
        await self.settlements.retry(now=True)  # a last try; what is left stays in the journal for the next process
        await self.store.aclose()
