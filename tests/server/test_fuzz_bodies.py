"""Random request bodies never get a 5xx from the gateway (issue 15, fuzz).

Hypothesis builds chat-completions bodies from plausible and hostile pieces (roles that are arrays or
objects, content of every JSON type, content parts of unknown types, tools and tool_calls of any shape,
stream_options that are not objects, routing options of the wrong type, and so on) and posts them over real
HTTP to a gateway on loopback. Every answer must be a 200 or a 4xx with an OpenAI-shaped error; a stream
must end with ``[DONE]`` or an error event. The example count is bounded so the test takes seconds.
"""

from __future__ import annotations

import http.client

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# Any JSON value, small: the shapes a client can send where the gateway expects something else.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def maybe(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """The plausible value most of the time, any JSON value sometimes."""
    return st.one_of(strategy, strategy, strategy, json_values)


roles = maybe(st.sampled_from(["system", "developer", "user", "assistant", "tool", "function"]))
content_parts = st.fixed_dictionaries(
    {"type": maybe(st.sampled_from(["text", "image_url", "input_audio", "file", "refusal", "video"]))},
    optional={"text": maybe(st.text(max_size=40)), "image_url": maybe(st.fixed_dictionaries({"url": st.text(max_size=20)}))},
)
contents = st.one_of(st.text(max_size=80), st.lists(maybe(content_parts), max_size=3), json_values)
tool_calls = st.lists(maybe(st.fixed_dictionaries({
    "id": maybe(st.text(max_size=8)), "type": maybe(st.just("function")),
    "function": maybe(st.fixed_dictionaries({"name": maybe(st.text(max_size=8)), "arguments": maybe(st.text(max_size=20))})),
})), max_size=2)
messages = st.fixed_dictionaries(
    {"role": roles},
    optional={"content": contents, "tool_calls": maybe(tool_calls), "tool_call_id": json_values, "name": json_values},
)
tools = st.lists(maybe(st.fixed_dictionaries({
    "type": maybe(st.just("function")),
    "function": maybe(st.fixed_dictionaries({"name": maybe(st.text(max_size=8)), "parameters": json_values})),
})), max_size=2)
bodies = st.fixed_dictionaries(
    {"messages": maybe(st.lists(maybe(messages), min_size=1, max_size=4))},
    optional={
        "model": maybe(st.sampled_from(["auto", "small", "mid", "big", "general", "reasoning", "nope"])),
        "stream": maybe(st.booleans()),
        "stream_options": maybe(st.fixed_dictionaries({}, optional={"include_usage": maybe(st.booleans())})),
        "max_tokens": maybe(st.integers(1, 5000)),
        "max_completion_tokens": maybe(st.integers(1, 5000)),
        "n": maybe(st.integers(1, 3)),
        "temperature": maybe(st.floats(0, 2)),
        "top_p": maybe(st.floats(0, 1)),
        "tools": maybe(tools),
        "tool_choice": json_values,
        "response_format": maybe(st.fixed_dictionaries({"type": maybe(st.sampled_from(["text", "json_object", "json_schema"]))})),
        "user": json_values,
        "metadata": json_values,
        "tierroute": maybe(st.fixed_dictionaries({}, optional={
            "tags": maybe(st.lists(st.text(max_size=6), max_size=2)),
            "max_cost_usd": maybe(st.floats(0.0001, 1)),
            "timeout_seconds": maybe(st.floats(0.5, 30)),
            "request_id": maybe(st.text(max_size=10)),
        })),
    },
)


# derandomize: the same examples on every run, so CI is reproducible; database=None: no .hypothesis folder.
@settings(max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=st.one_of(bodies, bodies, bodies, json_values))
def test_random_bodies_never_get_a_5xx(gateway, body):
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    try:
        conn.request("POST", "/v1/chat/completions", body=orjson.dumps(body), headers={"content-type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    assert resp.status < 500, (resp.status, data)
    if resp.status != 200:
        error = orjson.loads(data)["error"]
        assert error["message"] and set(error) >= {"message", "type", "param", "code"}
    elif resp.getheader("content-type") == "text/event-stream":
        assert data.endswith(b"data: [DONE]\n\n") or b'"error"' in data.rsplit(b"data: ", 1)[-1], data[-200:]
