"""The programmatic checks and the pairwise judge's verdict handling, without a network."""

from __future__ import annotations

import asyncio

import pytest

from tierroute.evals.judges import Answer, ChecksJudge, Pair, PairwiseJudge
from tierroute.evals.judges.pairwise import parse_verdict

SCHEMA = {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}
TOOLS = [{"type": "function", "function": {"name": "weather", "parameters": SCHEMA}}]


def pair(body: dict, routed: Answer, reference: Answer) -> Pair:
    return Pair(request_id="r", route="tier:general/small", body={"messages": [], **body}, routed=routed,
                reference=reference)


def text(t: str, model: str = "m") -> Answer:
    return Answer(model=model, text=t)


def call(arguments: str) -> Answer:
    return Answer(model="m", text="", tool_calls=({"id": "c", "type": "function",
                                                    "function": {"name": "weather", "arguments": arguments}},))


@pytest.mark.parametrize("body, routed, reference, outcome", [
    ({}, text(""), text("fine"), "loss"),                                            # empty answer
    ({}, text("I'm sorry, but I can't help with that."), text("Sure: 42"), "loss"),   # refusal
    ({}, text("Sure: 42"), text("   "), "win"),
    ({"response_format": {"type": "json_object"}}, text("{not json"), text('{"a": 1}'), "loss"),
    ({"response_format": {"type": "json_object"}}, text('```json\n{"a": 1}\n```'), text('{"a": 2}'), None),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}},
     text('{"town": "Paris"}'), text('{"city": "Paris"}'), "loss"),
    ({"tools": TOOLS}, call('{"city": 3}'), call('{"city": "Oslo"}'), "loss"),
    ({"tools": TOOLS}, call('{"city": '), call('{"city": "Oslo"}'), "loss"),
    ({"tools": TOOLS}, call('{"city": "Oslo"}'), call('{"city": "Rome"}'), None),     # both fine: no opinion
])
def test_checks_decide_only_when_exactly_one_arm_fails(body, routed, reference, outcome):
    verdict = asyncio.run(ChecksJudge().judge(pair(body, routed, reference)))
    assert verdict.outcome == outcome and verdict.skipped is None


@pytest.mark.parametrize("reply, parsed", [('{"verdict": "A"}', "A"), ('{"verdict":"tie"}', "tie"),
                                           ('Sure! {"verdict": "b"}', "B"), ("A is better", None), ("", None)])
def test_verdicts_are_parsed_strictly(reply, parsed):
    assert parse_verdict(reply) == parsed


def judge_replying(*replies: str) -> tuple[PairwiseJudge, list[str]]:
    prompts: list[str] = []
    queue = list(replies)

    async def call_model(model: str, body: dict) -> Answer:
        prompts.append(body["messages"][1]["content"])
        return Answer(model=model, text=queue.pop(0), cost_usd=0.5)

    return PairwiseJudge("judge", call_model, rubric="correctness"), prompts


@pytest.mark.parametrize("replies, outcome", [
    (('{"verdict": "A"}', '{"verdict": "B"}'), "win"),    # the routed answer preferred in both positions
    (('{"verdict": "B"}', '{"verdict": "A"}'), "loss"),
    (('{"verdict": "A"}', '{"verdict": "A"}'), "tie"),    # position bias: the orders disagree
    (('{"verdict": "tie"}', '{"verdict": "B"}'), "tie"),
])
def test_a_win_counts_only_when_both_orders_agree(replies, outcome):
    judge, prompts = judge_replying(*replies)
    verdict = asyncio.run(judge.judge(pair({"messages": [{"role": "user", "content": "q?"}]},
                                           text("routed answer"), text("reference answer"))))
    assert verdict.outcome == outcome and verdict.cost_usd == 1.0
    assert prompts[0].index("routed answer") < prompts[0].index("reference answer")
    assert prompts[1].index("reference answer") < prompts[1].index("routed answer")


def test_a_malformed_verdict_is_skipped_not_raised():
    judge, _ = judge_replying('{"verdict": "A"}', "no idea")
    verdict = asyncio.run(judge.judge(pair({}, text("a"), text("b"))))
    assert verdict.outcome is None and verdict.skipped == "malformed verdict"


def test_the_subset_validator_without_jsonschema_catches_the_common_faults():
    from tierroute.evals.judges.checks import _subset_errors

    schema = {"type": "object", "required": ["a", "b"],
              "properties": {"a": {"type": "integer"}, "b": {"enum": ["x", "y"]},
                             "c": {"type": "array", "items": {"type": "string"}}}}
    assert _subset_errors({"a": 1, "b": "x", "c": ["s"]}, schema, "$") == []
    errors = _subset_errors({"a": True, "c": ["s", 2]}, schema, "$")
    assert any("'b'" in e for e in errors) and any("$.a" in e for e in errors) and any("$.c[1]" in e for e in errors)
