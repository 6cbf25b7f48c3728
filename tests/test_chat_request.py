from __future__ import annotations

import pytest

from tierroute import InvalidRequest
from tierroute.chat_request import parse_chat_request, upstream_body
from tierroute.tokens import estimate


def test_token_estimates_are_in_the_right_range():
    english = "The quick brown fox jumps over the lazy dog. " * 100  # 1,001 tokens in cl100k and o200k
    assert 900 <= estimate(english) <= 1300
    chinese = "我们今天去公园散步，天气非常好。" * 50  # 900 tokens in cl100k, 600 in o200k
    assert 600 <= estimate(chinese) <= 1100


def test_features():
    body = {"model": "auto", "max_tokens": 100, "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "answer"},
        {"role": "user", "content": [{"type": "text", "text": "look at this"},
                                     {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
    ], "tools": [{"type": "function", "function": {"name": "f"}}], "tierroute": {"tags": ["batch"], "max_cost_usd": 0.01}}
    f = parse_chat_request(body, caller="key-1")
    assert f.text == "look at this", "the newest user turn drives routing"
    assert f.needs_vision and f.needs_tools and not f.needs_json
    assert f.max_tokens == 100 and f.n_messages == 4 and f.tags == ("batch",) and f.max_cost_usd == 0.01
    assert f.prompt_tokens > 800  # the image counts
    out = upstream_body(body, "up-model")
    assert out["model"] == "up-model" and "tierroute" not in out and body["model"] == "auto"


def test_per_request_timeout_and_client_request_id():
    f = parse_chat_request({"messages": [{"role": "user", "content": "x"}],
                            "tierroute": {"timeout_seconds": 2.5, "request_id": "job-7"}})
    assert f.timeout_seconds == 2.5 and f.client_request_id == "job-7"
    assert parse_chat_request({"messages": [{"role": "user", "content": "x"}]}).timeout_seconds is None


def test_missing_model_means_auto_and_max_completion_tokens_wins():
    f = parse_chat_request({"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 5, "max_tokens": 9})
    assert f.requested_model == "auto" and f.max_tokens == 5


@pytest.mark.parametrize("body,param", [
    ({"messages": [{"role": "user", "content": [{"type": "video"}]}]}, "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]}, "messages[0].content[0].text"),
    ({"messages": [{"role": "user"}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": "x"}], "tools": {}}, "tools"),
    ({"messages": [{"role": "user", "content": "x"}], "response_format": "json"}, "response_format"),
    ({"messages": [{"role": "user", "content": "x"}], "tierroute": {"max_cost_usd": -1}}, "tierroute.max_cost_usd"),
    ({"messages": [{"role": "user", "content": "x"}], "tierroute": {"timeout_seconds": 0}}, "tierroute.timeout_seconds"),
    ({"messages": [{"role": "user", "content": "x"}], "tierroute": {"timeout_seconds": "5"}}, "tierroute.timeout_seconds"),
    ({"messages": [{"role": "user", "content": "x"}], "tierroute": {"request_id": 5}}, "tierroute.request_id"),
])
def test_errors_name_the_field(body, param):
    with pytest.raises(InvalidRequest) as info:
        parse_chat_request(body)
    assert info.value.param == param and info.value.message.startswith(param)
