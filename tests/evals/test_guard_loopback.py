"""The quality guard end to end over real HTTP on loopback: a cheap model that degrades on one class of
prompts is caught by shadow judgments, that class moves to the reference, the other class stays, and the class
comes back once the cheap model recovers."""

from __future__ import annotations

import time

import openai
import pytest

from .conftest import CHAT, MATH, eval_settings

MAX_TO_SHIFT = 40    # judgments the guard may need to move a class that always loses
MAX_TO_RESTORE = 80  # and to bring it back once it ties again (a smaller effect: more evidence needed)


def ask(client: openai.OpenAI, prompt: str, *, stream: bool = False) -> tuple[str, str]:
    """(model that answered, x-tierroute-reason) for one request through the gateway."""
    if stream:
        with client.chat.completions.with_streaming_response.create(
                model="auto", messages=[{"role": "user", "content": prompt}], stream=True) as raw:
            text = "".join((c.choices[0].delta.content or "") for c in raw.parse() if c.choices)
            assert "[q=" in text
            return raw.headers["x-tierroute-model"], raw.headers["x-tierroute-reason"]
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": prompt}])
    assert "[q=" in raw.parse().choices[0].message.content
    return raw.headers["x-tierroute-model"], raw.headers["x-tierroute-reason"]


def settle(evaluator, timeout: float = 20.0) -> None:
    """Wait until every sample queued so far is judged (the evaluator runs on the gateway's loop)."""
    deadline = time.monotonic() + timeout
    while evaluator.processed < evaluator.queued:
        assert time.monotonic() < deadline, "samples were not judged in time"
        time.sleep(0.01)


def test_guard_moves_a_degraded_class_and_brings_it_back(quality, tmp_path, serve_settings):
    gw = serve_settings(eval_settings(quality.url, tmp_path))
    evaluator = gw.router.evals
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0)

    for _ in range(6):  # healthy: both classes answered by the cheap model, judged as ties
        assert ask(client, MATH)[0] == "cheap"
        assert ask(client, CHAT, stream=True)[0] == "cheap"  # streams are sampled too
        settle(evaluator)
    assert evaluator.queued == 12

    quality.degraded_words.add("math")  # the cheap model stops handling the math class
    for n in range(1, MAX_TO_SHIFT + 1):
        model, reason = ask(client, MATH)
        settle(evaluator)
        if model == "strong":
            break
    else:
        pytest.fail(f"the guard did not move the degraded class within {MAX_TO_SHIFT} judgments")
    assert "quality guard: intent:math/cheap shifted to strong" in reason
    assert n > 5  # min_judgments: it did not act on the first losses
    assert ask(client, CHAT)[0] == "cheap"  # the other class is left alone
    assert ask(client, MATH, stream=True)[0] == "strong"

    quality.degraded_words.clear()  # recovered: shifted requests keep replaying the cheap model in the shadow
    for n in range(1, MAX_TO_RESTORE + 1):
        model, reason = ask(client, MATH)
        settle(evaluator)
        if model == "cheap":
            break
    else:
        pytest.fail(f"the guard did not bring the class back within {MAX_TO_RESTORE} judgments")
    assert "quality guard" not in reason

    gw.router.ledger.flush()
    judgments = gw.router.ledger.judgments()
    decisions = [(j.route, j.verdict) for j in judgments if j.judge == "guard"]
    assert decisions == [("intent:math/cheap", "degraded"), ("intent:math/cheap", "restored")]
    math = [j for j in judgments if j.route == "intent:math/cheap" and j.judge.startswith("pairwise")]
    assert {j.verdict for j in math} == {"tie", "loss"}
    assert all(j.reference_model == "strong" and j.routed_model == "cheap" for j in math)
    assert all(j.judge_cost_usd > 0 and j.reference_cost_usd > 0 for j in math)
    chat = [j.verdict for j in judgments if j.route == "intent:chat/cheap"]
    assert chat and set(chat) == {"tie"}
    metrics = gw.router.metrics.render().decode()
    assert 'tierroute_quality_guard_transitions_total{route="intent:math/cheap",state="degraded"} 1.0' in metrics
    # Evaluation spend never reaches the callers' request rows.
    assert all(e.chosen_model != "judge" for e in gw.router.ledger.entries())


def test_alert_only_records_and_keeps_routing(quality, tmp_path, serve_settings):
    settings = eval_settings(quality.url, tmp_path, evals={"guard": {"action": "alert", "margin": 0.2,
                                                                    "min_judgments": 5}})
    gw = serve_settings(settings)
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0)
    quality.degraded_words.add("math")
    for _ in range(30):
        assert ask(client, MATH)[0] == "cheap"
        settle(gw.router.evals)
    gw.router.ledger.flush()
    assert [j.verdict for j in gw.router.ledger.judgments() if j.judge == "guard"] == ["degraded"]
