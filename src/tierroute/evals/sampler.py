"""Which answered requests are sampled for evaluation: per-route rates, per-process caps, exclusions.

Called for every answered routed request when evaluation is on, so it does a dictionary lookup, one random
draw and two counter checks: nothing that allocates unless the request is taken.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ..types import RequestFeatures
from .settings import EvalsSettings


class Sampler:
    def __init__(self, settings: EvalsSettings, *, rng: random.Random, clock: Callable[[], float]) -> None:
        self._rate = settings.sample_rate
        self._rates = dict(settings.route_rates)
        self._callers = frozenset(settings.exclude_callers)
        self._tags = frozenset(settings.exclude_tags)
        self._per_minute = settings.max_samples_per_minute
        self._per_hour = settings.max_samples_per_hour
        self._random = rng.random
        self._clock = clock
        self._minute, self._minute_count = -1, 0
        self._hour, self._hour_count = -1, 0
        self.capped = 0  # samples the caps refused

    def take(self, route_of: Callable[[], str | None], features: RequestFeatures) -> str | None:
        """The request's route if it is sampled, else None. ``route_of`` is only called when needed (per-route
        rates, or the draw said yes): most requests never build their route name."""
        if self._rates:
            route = route_of()
            rate = self._rates.get(route, self._rate) if route is not None else 0.0
        else:
            route, rate = None, self._rate
        if rate <= 0.0 or self._random() >= rate:
            return None
        if route is None:
            route = route_of()
            if route is None:
                return None
        if features.caller in self._callers or (self._tags and not self._tags.isdisjoint(features.tags)):
            return None
        now = self._clock()
        minute, hour = int(now // 60), int(now // 3600)
        if minute != self._minute:
            self._minute, self._minute_count = minute, 0
        if hour != self._hour:
            self._hour, self._hour_count = hour, 0
        if self._minute_count >= self._per_minute or self._hour_count >= self._per_hour:
            self.capped += 1
            return None
        self._minute_count += 1
        self._hour_count += 1
        return route


def route_scope(resolved_as: str) -> str | None:
    """The routing scope of a plan (``tier:general``, ``intent:code``, ``all``), or None when the request was
    not routed (it named one model, or runaway protection chose)."""
    if resolved_as in ("requested", "runaway") or resolved_as.startswith("router.default"):
        return None
    if resolved_as.startswith("intent "):
        return "intent:" + resolved_as[7:].split(" (", 1)[0]
    if resolved_as.startswith("tier "):
        return "tier:" + resolved_as[5:]
    return resolved_as.replace(" models", "")
