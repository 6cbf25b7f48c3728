"""The in-process library: the same behaviour as the gateway, sync and async, streaming included."""

from __future__ import annotations

import pytest

from tierroute import InvalidRequest, NoModelFits, Router, UpstreamBadRequest
from tierroute.ledger import SQLiteLedger

from .conftest import fake_settings

HELLO = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}


def test_sync_completion_stream_and_route(fake_upstream, tmp_path):
    settings = fake_settings(fake_upstream.url, tmp_path)
    with Router(settings, ledger=SQLiteLedger(settings.ledger.path)) as router:
        routed = router.completion(HELLO)
        assert routed.response["choices"][0]["message"]["content"] == "Hello from the fake upstream."
        assert routed.headers["x-tierroute-model"] == "small"
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in router.stream({**HELLO, "stream": True})
                       if c["choices"])
        assert text == "Hello from the fake upstream."
        calls = len(fake_upstream.requests)
        plan = router.route({**HELLO, "model": "reasoning"})
        assert plan.decision.chosen.model.id == "big" and len(fake_upstream.requests) == calls
        with pytest.raises(InvalidRequest):
            router.completion({"messages": []})
        router.ledger.flush()
        entries = router.ledger.entries()
        assert [e.stream for e in entries if e.status != "refused"] == [False, True]
        assert [(e.status, e.http_status) for e in entries if e.status == "refused"] == [("refused", 400)]


async def test_async_api(fake_upstream, tmp_path):
    async with Router(fake_settings(fake_upstream.url, tmp_path)) as router:
        routed = await router.acompletion(HELLO)
        assert routed.cost_usd > 0
        stream = await router.astream({**HELLO, "stream": True, "stream_options": {"include_usage": True}})
        chunks = [c async for c in stream.chunks]
        assert chunks[-1]["usage"]["completion_tokens"] == 5
        fake_upstream.behaviour.status = 400
        with pytest.raises(UpstreamBadRequest):  # never retried: one second opinion, then the upstream's 400
            await router.acompletion(HELLO)
        assert len(fake_upstream.requests) == 2 + 2
        with pytest.raises(NoModelFits):
            await router.acompletion({**HELLO, "tools": [{"type": "function", "function": {"name": "f"}}],
                                      "model": "extraction"})


async def test_a_stream_dropped_before_its_first_chunk_is_cleaned_up(fake_upstream, tmp_path):
    settings = fake_settings(fake_upstream.url, tmp_path)
    async with Router(settings, ledger=SQLiteLedger(settings.ledger.path)) as router:
        stream = await router.astream({**HELLO, "stream": True})
        await stream.aclose()  # never iterated
        await stream.aclose()  # and closing twice is harmless
        routed = await router.acompletion(HELLO)  # the pooled connection is usable again
        assert routed.response["choices"]
        router.ledger.flush()
        statuses = [(e.stream, e.status) for e in router.ledger.entries()]
        assert statuses == [(True, "cancelled"), (False, "ok")]
