"""tierroute in front of a real inference server nobody here wrote: llama.cpp's server (llama-cpp-python)
serving SmolLM2-135M-Instruct with a 2048-token context, through a real `tierroute serve` and the `openai` SDK.

Each test is a defect issue 19 found against this server, kept fixed. Skipped, naming the build command, where
``bench/real_server/build.sh`` has not been run.
"""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.request
from typing import Any

import openai
import pytest

from .conftest import Gateway
from .llama_server import CONTEXT_WINDOW, LlamaServer

HELLO = [{"role": "user", "content": "Say hello in one short sentence."}]

SENTENCES = [
    "The river bends twice before it reaches the old mill, where the water slows and turns green.",
    "Most of the village works in the orchards during the autumn months, picking apples until dark.",
    "A narrow road climbs the hill behind the church and ends at a gate that nobody remembers opening.",
    "In winter the market moves indoors, and the baker sells bread from a window beside the station.",
    "Children walk to school along the canal, counting the boats that wait for the lock to fill.",
    "The library keeps its maps in long drawers, each labelled by hand in faded brown ink.",
    "When the wind comes from the north, the smoke from the chimneys lies flat across the fields.",
    "Travellers who arrive late find the inn by the lantern that hangs above its blue door.",
]


def prose(server: LlamaServer, tokens: int) -> str:
    """English prose the server counts as about ``tokens`` tokens (never more)."""
    text, i = "", 0
    while True:
        sentence = f"{SENTENCES[i % len(SENTENCES)]} That was day {i + 1}. "
        if server.count_tokens(text + sentence) > tokens:
            return text
        text, i = text + sentence, i + 1


def chat_tokens(server: LlamaServer, content: str) -> int:
    """What the server counts for a one-message chat: the content plus the chat template around it."""
    return server.count_tokens(f"<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n")


def client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0, timeout=300)


def ledger_row(gateway: Gateway, request_id: str, timeout_seconds: float = 60.0) -> dict[str, Any]:
    """The final ledger row of one request, once the gateway has written it."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        if gateway.ledger.exists():
            with sqlite3.connect(gateway.ledger) as db:
                db.row_factory = sqlite3.Row
                row = db.execute("SELECT * FROM requests WHERE request_id = ? AND final = 1", (request_id,)).fetchone()
            if row is not None:
                return dict(row)
        if time.monotonic() > deadline:
            raise AssertionError(f"no final ledger row for {request_id} within {timeout_seconds} s")
        time.sleep(0.1)


def unavailable(gateway: Gateway) -> list[str]:
    with urllib.request.urlopen(f"{gateway.url}/health", timeout=30) as resp:
        return json.loads(resp.read())["unavailable"]


def test_discovery_lists_a_short_id_and_the_served_context(llama: LlamaServer, discovered):
    """The server names the model by its file path and reports no context: tierroute lists it under the
    file's stem and assumes the server's default window, not 8192 (issue 19 item 5)."""
    assert discovered.id == "llamacpp/smollm2-135m-instruct"
    assert discovered.upstream == str(llama.build.model)
    assert discovered.context_window == CONTEXT_WINDOW
    assert discovered.capabilities == frozenset({"json", "tools"})


def test_chat_stream_stop_json_mode_and_named_tool_choice(gateway: Gateway):
    c = client(gateway)
    raw = c.chat.completions.with_raw_response.create(model="auto", messages=HELLO, max_tokens=24, temperature=0)
    answer = raw.parse()
    assert answer.choices[0].message.content.strip()
    assert raw.headers["x-tierroute-model"] == gateway.model
    assert answer.usage.completion_tokens <= 24

    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in
                       c.chat.completions.create(model="auto", messages=HELLO, max_tokens=24, temperature=0, stream=True)
                       if chunk.choices)
    # Not compared with the answer above: the server's prompt cache changes the arithmetic enough to flip
    # near-ties, even at temperature 0.
    assert streamed.strip()

    # A stop sequence ends the answer where it first appears, without it: "e" appears within a few words of
    # any English answer, and the answer stops there rather than at max_tokens.
    story = [{"role": "user", "content": "Write two sentences about the sea."}]
    stopped = c.chat.completions.create(model="auto", messages=story, max_tokens=60, temperature=0, stop=["e"]).choices[0]
    assert stopped.finish_reason == "stop" and "e" not in stopped.message.content
    assert c.chat.completions.create(model="auto", messages=story, max_tokens=60,
                                     temperature=0).choices[0].message.content.count("e") >= 1

    as_json = c.chat.completions.create(
        model="auto", max_tokens=120, temperature=0, response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "Give a JSON object with a name and an age."}]).choices[0]
    assert isinstance(json.loads(as_json.message.content), dict)

    tool = {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city",
                                             "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                            "required": ["city"]}}}
    called = c.chat.completions.create(
        model="auto", max_tokens=60, temperature=0, tools=[tool],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        messages=[{"role": "user", "content": "What is the weather in Paris?"}]).choices[0]
    (call,) = called.message.tool_calls
    assert call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments)["city"], str)


def test_a_client_that_drops_a_stream_stops_the_upstream(gateway: Gateway, llama: LlamaServer):
    """The server generates until its client goes away: tierroute must go away too when its own client does,
    or the single-slot server keeps generating for nobody while the next request waits (issue 19 item 1)."""
    c = client(gateway)
    end_of_turn = [str(t) for t in llama.post("/extras/tokenize", {"input": "<|im_end|><|endoftext|>"})["tokens"]]
    endless = dict(model=gateway.model, max_tokens=1500, temperature=0, stream=True,
                   logit_bias={t: -100 for t in end_of_turn},  # never ends by itself before max_tokens
                   messages=[{"role": "user", "content": "Count upwards from one, forever."}])
    disconnects = llama.log.read_text().count("Disconnected from client")
    raw = c.chat.completions.with_raw_response.create(**endless)
    request_id = raw.headers["x-tierroute-request-id"]
    stream = raw.parse()
    received = [next(iter(stream)) for _ in range(5)]
    assert len(received) == 5
    stream.close()

    # The server says it saw its client go: the upstream stream was closed, not left generating.
    deadline = time.monotonic() + 60
    while llama.log.read_text().count("Disconnected from client") == disconnects:
        assert time.monotonic() < deadline, "the server never saw tierroute close the stream"
        time.sleep(0.2)
    row = ledger_row(gateway, request_id)
    assert row["status"] == "cancelled", row
    assert 1 <= row["completion_tokens"] < 1500 and row["usage_estimated"] == 1, row

    # And the next request is served (the server's one slot is free again).
    nxt = c.chat.completions.with_raw_response.create(model=gateway.model, messages=HELLO, max_tokens=8)
    assert nxt.parse().choices[0].message.content is not None
    assert ledger_row(gateway, nxt.headers["x-tierroute-request-id"])["status"] == "ok"


def test_a_streamed_prompt_the_server_finds_too_long_fails_that_request_only(gateway: Gateway, llama: LlamaServer):
    """The server answers a streamed over-long prompt with 200 and no events: a failure of that request,
    recorded as one, that takes nothing out of rotation (issue 19 item 2)."""
    c = client(gateway)
    too_long = prose(llama, CONTEXT_WINDOW + 200)
    assert chat_tokens(llama, too_long) > CONTEXT_WINDOW
    for _ in range(6):  # more than the breaker's default 5 consecutive failures
        with pytest.raises(openai.APIStatusError) as info:
            for _chunk in c.chat.completions.create(model=gateway.model, max_tokens=16, stream=True,
                                                    messages=[{"role": "user", "content": too_long}]):
                pass
        row = ledger_row(gateway, info.value.response.headers["x-tierroute-request-id"])
        assert row["status"] != "ok" and row["completion_tokens"] == 0, row
    assert unavailable(gateway) == []
    answer = c.chat.completions.create(model=gateway.model, messages=HELLO, max_tokens=8, stream=True)
    assert "".join(ch.choices[0].delta.content or "" for ch in answer if ch.choices).strip()


def test_a_prompt_near_the_limit_is_served_and_unreported_usage_is_estimated_close_to_the_truth(
        gateway: Gateway, llama: LlamaServer):
    """Routing counts a prompt it has no tokenizer for with a margin; a prose prompt that fits must still be
    served. The server sends no usage in a stream: what tierroute records instead is close to the server's
    own count, capped at max_tokens, and marked estimated (issue 19 items 3, 4)."""
    c = client(gateway)
    max_tokens = 48
    text = prose(llama, int(CONTEXT_WINDOW * 0.8))
    truth = chat_tokens(llama, text)
    assert truth + max_tokens < CONTEXT_WINDOW
    raw = c.chat.completions.with_raw_response.create(model="auto", max_tokens=max_tokens, stream=True,
                                                      messages=[{"role": "user", "content": text}])
    chunks = list(raw.parse())
    assert all(chunk.usage is None for chunk in chunks), "this server sends no usage in a stream"
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    row = ledger_row(gateway, raw.headers["x-tierroute-request-id"])
    assert row["status"] == "ok" and row["usage_estimated"] == 1, row
    assert truth / 1.5 <= row["prompt_tokens"] <= truth * 1.5, (row["prompt_tokens"], truth)
    assert 1 <= row["completion_tokens"] <= max_tokens, row


def test_a_passed_through_400_keeps_the_servers_param_and_code(gateway: Gateway, llama: LlamaServer):
    too_long = prose(llama, CONTEXT_WINDOW + 200)
    with pytest.raises(openai.BadRequestError) as info:
        client(gateway).chat.completions.create(model=gateway.model, max_tokens=16,
                                                messages=[{"role": "user", "content": too_long}])
    assert info.value.code == "context_length_exceeded"
    assert info.value.param == "messages"
    assert "maximum context length is 2048" in info.value.message
    row = ledger_row(gateway, info.value.response.headers["x-tierroute-request-id"])
    assert row["status"] != "ok" and row["http_status"] == 400, row
    assert unavailable(gateway) == []
