"""An LLM judge: pairwise comparison of the routed and reference answers against a rubric.

The pair is judged twice with the answers' positions swapped, concurrently; a win (or loss) counts only
when both orders agree, anything else is a tie, so a judge's preference for the first (or second) position
cancels out. The judge is told to ignore length. A reply that is not a verdict costs a counted skip.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from ...types import JSONDict
from .base import Answer, Pair, Verdict

# Calls a catalog model with a chat body (through the router's dispatcher, on the evaluation budget).
CallModel = Callable[[str, JSONDict], Awaitable[Answer]]

SYSTEM = """You are an impartial judge of two AI assistants' answers to the same request.
Compare them on: {rubric}.
Do not let the answers' length, style or the order they are shown in influence you: a longer answer is not
better for being longer, and either position may hold the better answer. If they are equally good (or equally
bad), say tie.
Reply with one JSON object and nothing else: {{"verdict": "A"}}, {{"verdict": "B"}} or {{"verdict": "tie"}}."""

TEMPLATE = """[Request]
{request}

[Answer A]
{a}

[Answer B]
{b}"""

_VERDICT = re.compile(r'"verdict"\s*:\s*"(A|B|tie)"', re.I)


class PairwiseJudge:
    name = "pairwise"

    def __init__(self, model: str, call: CallModel, *, rubric: str, max_chars: int = 8000) -> None:
        self.model = model
        self.name = f"pairwise:{model}"
        self._call = call
        self._rubric = rubric
        self._max_chars = max_chars

    async def judge(self, pair: Pair) -> Verdict:
        request = _render_request(pair.body, self._max_chars)
        routed, reference = _render(pair.routed, self._max_chars), _render(pair.reference, self._max_chars)
        results = await asyncio.gather(self._ask(request, routed, reference), self._ask(request, reference, routed),
                                       return_exceptions=True)
        cost = sum(r[1] for r in results if isinstance(r, tuple))
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            return Verdict(self.name, None, cost_usd=cost, skipped=f"judge call failed: {type(failed[0]).__name__}: "
                                                                   f"{str(failed[0])[:200]}")
        (first, _), (second, _) = results  # type: ignore[misc]
        if first is None or second is None:
            return Verdict(self.name, None, cost_usd=cost, skipped="malformed verdict",
                           detail={"orders": [first, second]})
        # first: routed shown as A; second: routed shown as B. Map both to the routed arm's view.
        routed_first = {"A": "win", "B": "loss", "tie": "tie"}[first]
        routed_second = {"B": "win", "A": "loss", "tie": "tie"}[second]
        outcome = routed_first if routed_first == routed_second else "tie"
        return Verdict(self.name, outcome, cost_usd=cost,  # type: ignore[arg-type]
                       detail={"orders": [routed_first, routed_second]})

    async def _ask(self, request: str, a: str, b: str) -> tuple[str | None, float]:
        body = {"messages": [{"role": "system", "content": SYSTEM.format(rubric=self._rubric)},
                             {"role": "user", "content": TEMPLATE.format(request=request, a=a, b=b)}],
                "temperature": 0, "max_tokens": 20}
        answer = await self._call(self.model, body)
        return parse_verdict(answer.text), answer.cost_usd


def parse_verdict(text: str) -> str | None:
    """"A", "B" or "tie" from the judge's reply, or None when it is not a verdict."""
    match = _VERDICT.search(text or "")
    if match is None:
        return None
    found = match.group(1)
    return "tie" if found.lower() == "tie" else found.upper()


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "\n[... cut for judging]"


def _render(answer: Answer, limit: int) -> str:
    if answer.tool_calls:
        calls = [{"name": (c.get("function") or {}).get("name"), "arguments": (c.get("function") or {}).get("arguments")}
                 for c in answer.tool_calls]
        return _cut(answer.text + "\n[tool calls] " + orjson.dumps(calls).decode(), limit)
    return _cut(answer.text, limit)


def _render_request(body: JSONDict, limit: int) -> str:
    lines = []
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        content: Any = message.get("content")
        if isinstance(content, list):  # content parts: keep the text ones
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        lines.append(f"{message.get('role', 'user')}: {content or ''}")
    return _cut("\n".join(lines), limit)
