"""The Judge protocol: compare the routed arm's answer with the reference arm's, for one request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from ...types import JSONDict

Outcome = Literal["win", "tie", "loss"]
# The guard's observation for each outcome: the routed (cheap) arm's loss minus its win.
SCORE: dict[str, int] = {"win": -1, "tie": 0, "loss": 1}


@dataclass(frozen=True, slots=True)
class Answer:
    """One arm's answer: its text and tool calls (as the OpenAI message carries them)."""

    model: str
    text: str
    tool_calls: tuple[JSONDict, ...] = ()
    cost_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class Pair:
    """What a judge sees: the request (messages and the fields that constrain the answer) and both answers."""

    request_id: str
    route: str
    body: JSONDict
    routed: Answer
    reference: Answer


@dataclass(frozen=True, slots=True)
class Verdict:
    """A judge's outcome for the routed arm, or ``None`` when it has no opinion (another judge decides).
    ``skipped`` names why a judgment failed (a malformed verdict, a judge call that failed): counted, not fatal."""

    judge: str
    outcome: Outcome | None
    cost_usd: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None


@runtime_checkable
class Judge(Protocol):
    name: str

    async def judge(self, pair: Pair) -> Verdict:
        """Judge ``pair``; never raises for a bad answer or a failed call (return a skipped Verdict)."""
        ...
