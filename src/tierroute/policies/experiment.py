"""A/B between router versions: a policy that hands each request to one of several arms (policies).

The arm is a pure function of the request: a hash of the experiment's name and the request's sticky key (its
caller, its ``session:<id>`` tag, or its user) picks a point in [0, 1), and the arms' weights cut that interval.
So a caller always lands in the same arm, in every process and on every replica, with no shared state, and
over many keys each arm gets its weight's share. Requests without the key are assigned by a hash of the
client's request id (``x-request-id``) when it sent one, else of the start of the prompt: still a pure
function, so replays reproduce the decision. One hash per request; no I/O.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import accumulate
from typing import Any

from .._exceptions import ConfigError
from ..types import Decision, ModelSpec, RequestFeatures, StateSnapshot
from .base import Policy

SESSION_TAG = "session:"
# Keyless requests hash at most this much of the prompt: enough to tell prompts apart, bounded in cost.
FALLBACK_TEXT_CHARS = 1024
_SCALE = float(1 << 64)


@dataclass(frozen=True, slots=True)
class Arm:
    name: str
    policy: Policy
    weight: float


def sticky_key(features: RequestFeatures, sticky_by: str) -> str | None:
    """The request's key for ``sticky_by`` (caller, session or user), or None when it has none."""
    if sticky_by == "caller":
        return features.caller
    if sticky_by == "user":
        return features.user
    for tag in features.tags:
        if tag.startswith(SESSION_TAG):
            return tag[len(SESSION_TAG):] or None
    return None


def unit_point(experiment: str, key: str) -> float:
    """A stable point in [0, 1) for ``key`` in ``experiment``: the same in every process (unlike ``hash``)."""
    digest = hashlib.blake2b(f"{experiment}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


class ExperimentPolicy:
    """Routes each request by the arm its sticky key hashes to; the decision says which arm and why.

    ``decision.details["arm"]`` is the arm's name: the router records it (ledger column ``arm``) and
    returns it (header ``x-tierroute-arm``)."""

    def __init__(self, name: str, arms: Sequence[Arm], *, sticky_by: str = "caller") -> None:
        self.name = "experiment"
        self.experiment = name
        self.arms = tuple(arms)
        self.sticky_by = sticky_by
        total = sum(a.weight for a in self.arms)
        # Upper edges of each arm's slice of [0, 1); the last is 1 exactly so rounding never falls off the end.
        self._edges = [edge / total for edge in accumulate(a.weight for a in self.arms)][:-1]
        # An encoder-backed arm embeds the prompt before deciding; the router looks for ``prepare`` on us.
        self.prepare = self._prepare if any(getattr(a.policy, "prepare", None) for a in self.arms) else None

    def arm_for(self, features: RequestFeatures) -> tuple[Arm, str]:
        """The request's arm and what assigned it (``caller``, ``session``, ``user``, or a fallback)."""
        key = sticky_key(features, self.sticky_by)
        by = self.sticky_by
        if key is None:
            if features.client_request_id:
                key, by = "r\x00" + features.client_request_id, "request id"
            else:
                key, by = "p\x00" + features.text[:FALLBACK_TEXT_CHARS], "prompt"
        else:
            key = "k\x00" + key
        return self.arms[bisect_right(self._edges, unit_point(self.experiment, key))], by

    def decide(self, features: RequestFeatures, candidates: Sequence[ModelSpec], state: StateSnapshot) -> Decision:
        arm, by = self.arm_for(features)
        inner = arm.policy.decide(features, candidates, state)
        return replace(inner, reason=f"arm {arm.name} of {self.experiment} (by {by}): {inner.reason}",
                       details={**inner.details, "arm": arm.name, "experiment": self.experiment})

    async def _prepare(self, features: RequestFeatures) -> RequestFeatures:
        prepare = getattr(self.arm_for(features)[0].policy, "prepare", None)
        return features if prepare is None else await prepare(features)

    async def aclose(self) -> None:
        for arm in self.arms:
            close = getattr(arm.policy, "aclose", None)
            if close is not None:
                await close()


def build_experiment(experiment: Any, models: Sequence[ModelSpec], *, build: Any, names: Sequence[str]) -> ExperimentPolicy:
    """The :class:`ExperimentPolicy` for ``router.experiment``; every arm's policy and options are checked here,
    at start-up, and an error names the arm's field."""
    arms = []
    for i, arm in enumerate(experiment.arms):
        field = f"router.experiment.arms[{i}]"
        if arm.policy not in names:
            raise ConfigError(f"{field}.policy: unknown policy {arm.policy!r} for arm {arm.name!r}; expected one of: "
                              f"{', '.join(names)}", param=f"{field}.policy")
        try:
            policy = build(arm.policy, arm.options, models)
        except ConfigError as exc:
            raise ConfigError(f"{field}.options (arm {arm.name!r}): {exc}", param=f"{field}.options") from exc
        arms.append(Arm(name=arm.name, policy=policy, weight=arm.weight))
    return ExperimentPolicy(experiment.name, arms, sticky_by=experiment.sticky_by)
