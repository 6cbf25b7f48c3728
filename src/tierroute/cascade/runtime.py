"""The gateway's cascade for one non-streamed request: the cheap models answer concurrently, and their
answer is returned when they agree; otherwise the strong model answers.

Latency: one round of cheap calls in parallel (the slower of them), then, on disagreement, one strong call.
Streams are never cascaded: the caller would have to wait for every cheap answer before its first token, which
removes what streaming is for. Every call is an attempt of the request (ledger rows, budgets charged with the
sum), numbered in call order; the answer's attempt is the last, so the ledger's final row is what the caller got.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, Literal

from .._exceptions import ConfigError, UpstreamError
from ..catalog import Catalog
from ..config import CascadeSettings
from ..policies import expected_cost_usd, rejection
from ..providers.base import Completion
from ..reliability.dispatch import Attempt, BodyFor, Dispatcher
from ..types import EMPTY_STATE, Decision, ModelSpec, Ranked, RequestFeatures
from .answers import extract

Outcome = Literal["agreed", "escalated"]
MIN_STRONG_SECONDS = 1.0  # the strong call's floor when the cheap round used up (nearly) all of the timeout


def reply_text(response: Any) -> str | None:
    """The first choice's message text, or None (a tool call, an empty or malformed answer)."""
    try:
        content = response["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


class Cascade:
    """Built once from ``router.cascade``; ``complete`` runs it for one request."""

    def __init__(self, cheap: Sequence[ModelSpec], strong: ModelSpec, answer: str) -> None:
        self.cheap = tuple(cheap)
        self.strong = strong
        self.answer = answer
        self.models = self.cheap + (strong,)

    @classmethod
    def build(cls, settings: CascadeSettings, catalog: Catalog) -> Cascade | None:
        """None when off; a ConfigError naming the field for anything it cannot run."""
        if not settings.enabled:
            return None
        if not 2 <= len(settings.models) <= 3:
            raise ConfigError(f"router.cascade.models: give two or three cheap models to compare, got "
                              f"{len(settings.models)}")
        if settings.escalate_to is None:
            raise ConfigError("router.cascade.escalate_to: required when router.cascade.enabled is true")
        named = [(f"router.cascade.models[{i}]", m) for i, m in enumerate(settings.models)]
        specs = [_chat_model(catalog, where, m) for where, m in named + [("router.cascade.escalate_to",
                                                                            settings.escalate_to)]]
        if len(set(settings.models)) != len(settings.models) or settings.escalate_to in settings.models:
            raise ConfigError("router.cascade: the cheap models and escalate_to must be different models")
        return cls(specs[:-1], specs[-1], settings.answer)

    def applies(self, features: RequestFeatures, resolved_as: str) -> bool:
        """Routed (not a named model), non-streamed requests without tools, that every model of the cascade can
        serve (context, output length, vision, JSON mode), whose cost ceiling (``max_cost_usd``) covers all of
        them: a caller naming a model gets it, and a request the cascade cannot serve is routed as usual. Tool
        calls are not compared (there is no final answer to agree on), so they would always escalate."""
        if features.stream or features.needs_tools or resolved_as == "requested":
            return False
        if any(rejection(features, m, EMPTY_STATE) is not None for m in self.models):
            return False
        ceiling = features.max_cost_usd
        return ceiling is None or sum(expected_cost_usd(features, m) for m in self.models) <= ceiling

    async def complete(self, dispatcher: Dispatcher, decision: Decision, features: RequestFeatures,
                       body_for: BodyFor, attempts: list[Attempt],
                       timeout_seconds: float) -> tuple[Completion, Outcome]:
        """Answer the request; ``attempts`` gets every call's attempts (also when failing or cancelled)."""
        deadline = time.monotonic() + timeout_seconds
        cheap_runs: list[list[Attempt]] = [[] for _ in self.cheap]
        strong_run: list[Attempt] = []
        outcome: Outcome = "escalated"
        try:
            results = await asyncio.gather(
                *(self._call(dispatcher, decision, features, model, body_for, run, timeout_seconds)
                  for model, run in zip(self.cheap, cheap_runs)), return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException) and not isinstance(result, UpstreamError):
                    raise result
            answers = [None if isinstance(r, BaseException) else extract(reply_text(r.response), self.answer)
                       for r in results]
            first = answers[0]
            if first is not None and all(a == first for a in answers[1:]):
                outcome = "agreed"
                agreed = results[0]
                assert isinstance(agreed, Completion)
                return agreed, outcome
            remaining = max(MIN_STRONG_SECONDS, deadline - time.monotonic())
            strong = await self._call(dispatcher, decision, features, self.strong, body_for, strong_run, remaining)
            return strong, outcome
        finally:
            # The answer's attempt last: on agreement the first cheap model's, on escalation the strong one's.
            order = cheap_runs[1:] + cheap_runs[:1] if outcome == "agreed" else cheap_runs + [strong_run]
            attempts.extend(a for run in order for a in run)
            for number, attempt in enumerate(attempts, start=1):
                attempt.number = number

    @staticmethod
    async def _call(dispatcher: Dispatcher, decision: Decision, features: RequestFeatures, model: ModelSpec,
                    body_for: BodyFor, run: list[Attempt], timeout_seconds: float) -> Completion:
        one = Decision(ranked=(Ranked(model=model, expected_cost_usd=expected_cost_usd(features, model)),),
                       reason=decision.reason, policy=decision.policy, details=decision.details)
        return await dispatcher.complete(one, body_for, run, features=features, timeout_seconds=timeout_seconds)


def _chat_model(catalog: Catalog, where: str, model_id: str) -> ModelSpec:
    spec = catalog.models.get(model_id)
    if spec is None or spec.mode != "chat":
        raise ConfigError(f"{where}: {model_id!r} is not a configured chat model (known: "
                          f"{', '.join(sorted(m for m, s in catalog.models.items() if s.mode == 'chat'))})")
    return spec
