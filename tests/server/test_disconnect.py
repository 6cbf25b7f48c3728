"""A client that leaves stops the upstream (issue 19 item 1), through a real ``tierroute serve`` process.

The slow fake upstream generates a token every 50 ms for 10 s and notices when its connection closes, as a
real inference server does. Before the fix the gateway never listened for the client's disconnect: the
upstream generated to the end and the ledger said ``ok``.
"""

from __future__ import annotations

import time

import openai
import pytest

from ..fakes.slow_upstream import SlowUpstream
from .processes import serve, wait_for, write_config

HI = [{"role": "user", "content": "count slowly"}]


@pytest.fixture(scope="module")
def slow_upstream() -> SlowUpstream:
    return SlowUpstream(tokens=200, token_seconds=0.05).start()


@pytest.fixture
def served(slow_upstream, tmp_path):
    slow_upstream.generations.clear()
    with serve(write_config(tmp_path, slow_upstream.url)) as running:
        yield running


def test_a_dropped_stream_stops_the_upstream_and_is_recorded_cancelled(served, slow_upstream):
    client = openai.OpenAI(base_url=f"{served.url}/v1", api_key="none", max_retries=0, timeout=30)
    received = 0
    with client.chat.completions.create(model="strong", messages=HI, stream=True) as stream:
        for chunk in stream:
            received += bool(chunk.choices and chunk.choices[0].delta.content)
            if received == 5:
                break  # leaving the block closes the connection mid-stream
    left = time.monotonic()
    gen = wait_for(lambda: slow_upstream.generations and slow_upstream.generations[-1].closed_at and
                   slow_upstream.generations[-1], 5, "the upstream to see its connection close")
    assert gen.finished_at is None and gen.generated < 100, gen
    assert gen.closed_at - left < 3  # promptly: a few token intervals, not the 10 s the answer would take
    row = wait_for(lambda: served.ledger_rows(), 5, "the ledger row")[-1]
    assert row["status"] == "cancelled" and row["stream"] == 1
    # charged for what was generated (about 5 tokens relayed, a few more in flight), not for 200 tokens
    assert 5 <= row["completion_tokens"] <= gen.generated + 1
    assert row["cost_usd"] < 100 * 15 / 1e6


def test_a_plain_request_abandoned_by_its_client_stops_the_upstream(served, slow_upstream):
    client = openai.OpenAI(base_url=f"{served.url}/v1", api_key="none", max_retries=0, timeout=0.6)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="strong", messages=HI)
    left = time.monotonic()
    gen = wait_for(lambda: slow_upstream.generations and slow_upstream.generations[-1].closed_at and
                   slow_upstream.generations[-1], 5, "the upstream to see its connection close")
    assert gen.finished_at is None and gen.generated < 100, gen
    assert gen.closed_at - left < 3
    row = wait_for(lambda: served.ledger_rows(), 5, "the ledger row")[-1]
    assert row["status"] == "cancelled" and row["stream"] == 0
    assert row["completion_tokens"] == 0 and row["prompt_tokens"] > 0  # the prompt was sent; no answer came back


def test_a_client_that_stays_gets_the_whole_answer(served, slow_upstream):
    slow_upstream.tokens = 10
    try:
        client = openai.OpenAI(base_url=f"{served.url}/v1", api_key="none", max_retries=0, timeout=30)
        answer = client.chat.completions.create(model="strong", messages=HI)
        assert answer.choices[0].message.content == " tok" * 10
        chunks = list(client.chat.completions.create(model="strong", messages=HI, stream=True))
        assert sum(bool(c.choices and c.choices[0].delta.content) for c in chunks) == 10
    finally:
        slow_upstream.tokens = 200
    rows = wait_for(lambda: len(served.ledger_rows()) >= 2 and served.ledger_rows(), 5, "two ledger rows")
    assert [r["status"] for r in rows] == ["ok", "ok"]


async def _token_level(gw) -> int:
    from tierroute.budgets.windows import bucket

    key = f"global=all:tok:day:{bucket('day', time.time())[0]}"
    return (await gw.router.guards[0].store.levels([key]))[0]


@pytest.mark.parametrize("stream", [True, False])
async def test_the_budget_is_settled_for_what_a_dropped_request_used(slow_upstream, tmp_path, serve_settings, stream):
    """The reservation (prompt + max_tokens) is replaced by what was used: the prompt and the tokens relayed."""
    import asyncio
    import sqlite3

    from tierroute.bootstrap import build_guards

    from ..conftest import fake_settings

    slow_upstream.generations.clear()
    settings = fake_settings(slow_upstream.url, tmp_path,
                             limits={"budgets": [{"scope": "global", "window": "day", "tokens": 1_000_000}]})
    gw = serve_settings(settings, guards=build_guards(settings))
    async with openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0,
                                  timeout=30 if stream else 0.6) as client:
        if stream:
            response = await client.chat.completions.create(model="big", messages=HI, stream=True, max_tokens=4000)
            received = 0
            async for chunk in response:
                received += bool(chunk.choices and chunk.choices[0].delta.content)
                if received == 5:
                    break
            await response.close()
        else:
            with pytest.raises(openai.APITimeoutError):
                await client.chat.completions.create(model="big", messages=HI, max_tokens=4000)

    async def settled() -> tuple[int, dict]:
        for _ in range(250):
            with sqlite3.connect(settings.ledger.path) as db:
                db.row_factory = sqlite3.Row
                try:
                    rows = list(db.execute("SELECT * FROM requests WHERE final = 1"))
                except sqlite3.OperationalError:
                    rows = []
            if rows:
                return await _token_level(gw), dict(rows[-1])
            await asyncio.sleep(0.02)
        raise AssertionError("no ledger row")

    level, row = await settled()
    assert row["status"] == "cancelled"
    assert level == row["prompt_tokens"] + row["completion_tokens"]  # settled to the recorded use, nothing held
    assert level < 1000  # far below the 4,000-token reservation and the 200 tokens the upstream would have made
    assert (row["completion_tokens"] > 0) == stream
