"""The quality guard: per route, a sequential test of the routed arm against the reference, and what to do
when it finds a loss of quality.

A route is *holding* while a betting test of ``H0: mean(loss - win) <= margin`` has not rejected. When it
rejects (at ``1 - confidence``, valid under checking after every judgment, see ``sequential``), the route
becomes *degraded*: with ``action: shift`` its traffic goes to the reference model on every replica that
shares the store; with ``alert`` it is only recorded, logged and counted. Sampling goes on (a shifted
route's requests replay the cheap model in the shadow), and a fresh test of the opposite side,
``H0: mean >= margin``, brings the route back when it rejects. Each state lasts at least ``min_judgments``
judgments, and the band between the two rejections is sticky: that is the hysteresis.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from ..types import Decision
from .sequential import BettingTest
from .settings import QualityGuardSettings
from .store import GuardStore, State

log = logging.getLogger("tierroute.evals")

HOLDING, DEGRADED = "holding", "degraded"


@dataclass(frozen=True, slots=True)
class Transition:
    route: str
    phase: str
    reason: str
    state: State


def new_state(margin: float) -> State:
    return {"phase": HOLDING, "generation": 0, "since": None, "target": None, "reason": None,
            "wins": 0, "ties": 0, "losses": 0, "phase_judgments": 0,
            "test": BettingTest(margin, 1).to_dict()}


class QualityGuard:
    def __init__(self, settings: QualityGuardSettings, store: GuardStore) -> None:
        self.settings = settings
        self.store = store
        self.alpha = 1.0 - settings.confidence
        # route -> (target model, reason) for shifted routes: what ``steer`` reads on the request path.
        self._shifted: dict[str, tuple[str, str]] = {}

    # -- judgments (off the request path) -----------------------------------------------------------------
    async def observe(self, route: str, x: float, reference_model: str, *, now: float) -> Transition | None:
        """Count one judgment (``x``: 1 loss, 0 tie, -1 win) and return the route's transition, if any."""
        settings, alpha = self.settings, self.alpha

        def apply(state: State | None) -> State:
            state = dict(state) if state is not None else new_state(settings.margin)
            key = {1: "losses", 0: "ties", -1: "wins"}[int(x)]
            state[key] += 1
            state["phase_judgments"] += 1
            test = BettingTest.from_dict(state["test"])
            test.observe(x)
            state["test"] = test.to_dict()
            if state["phase_judgments"] < settings.min_judgments or not test.rejects(alpha):
                return state
            n = state["phase_judgments"]
            if state["phase"] == HOLDING:
                reason = (f"loss of quality established on {route}: mean(loss - win) > {settings.margin:g} at "
                          f"{settings.confidence:.0%} after {n} judgments")
                return {**state, "phase": DEGRADED, "target": reference_model, "reason": reason, "since": now,
                        "generation": state["generation"] + 1, "phase_judgments": 0,
                        "test": BettingTest(settings.margin, -1).to_dict()}
            reason = (f"quality restored on {route}: mean(loss - win) < {settings.margin:g} at "
                      f"{settings.confidence:.0%} after {n} judgments")
            return {**state, "phase": HOLDING, "target": None, "reason": reason, "since": now,
                    "generation": state["generation"] + 1, "phase_judgments": 0,
                    "test": BettingTest(settings.margin, 1).to_dict()}

        before, after = await self.store.update(route, apply)
        self._adopt(route, after)
        if before is not None and before["generation"] == after["generation"]:
            return None
        if before is None and after["generation"] == 0:
            return None
        log.warning("quality guard (%s): %s", settings.action, after["reason"])
        return Transition(route=route, phase=after["phase"], reason=after["reason"], state=after)

    async def refresh(self) -> dict[str, State]:
        """Read every route's state from the store (another replica may have changed it)."""
        states = await self.store.states()
        shifted = {}
        for route, state in states.items():
            if self.settings.action == "shift" and state.get("phase") == DEGRADED and state.get("target"):
                shifted[route] = (state["target"], state.get("reason") or "")
        self._shifted = shifted
        return states

    def _adopt(self, route: str, state: State) -> None:
        if self.settings.action == "shift" and state["phase"] == DEGRADED and state.get("target"):
            self._shifted = {**self._shifted, route: (state["target"], state["reason"])}
        elif route in self._shifted:
            self._shifted = {r: v for r, v in self._shifted.items() if r != route}

    # -- the request path ---------------------------------------------------------------------------------
    def steer(self, scope: str, decision: Decision) -> Decision:
        """The decision, with a shifted route's reference model first; unchanged (one dict test) otherwise."""
        shifted = self._shifted
        if not shifted:
            return decision
        cheap = decision.chosen.model.id
        route = f"{scope}/{cheap}"
        hit = shifted.get(route)
        if hit is None:
            return decision
        target, why = hit
        ranked = decision.ranked
        first = next((r for r in ranked if r.model.id == target), None)
        if first is None:  # the reference cannot take this request (capabilities, context): leave it
            return decision
        reordered = (first, *(r for r in ranked if r is not first))
        details: dict[str, Any] = {**decision.details, "quality_route": route, "quality_from": cheap}
        return replace(decision, ranked=reordered, details=details,
                       reason=f"quality guard: {route} shifted to {target} ({why}); {decision.reason}")

    @property
    def any_shifted(self) -> bool:
        return bool(self._shifted)

    def shifted(self) -> dict[str, tuple[str, str]]:
        return dict(self._shifted)
