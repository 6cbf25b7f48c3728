"""The access log over real HTTP: one line per request, meaningful levels, never a key or a prompt."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import openai
import orjson
import pytest

from tierroute.identity import caller_id
from tierroute.observability.access_log import LOGGER_NAME

from ..conftest import GATEWAY_KEY
from . import wire

SECRET_PROMPT = "the launch code is 0000-SWORDFISH"


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        # Rendered now: a redacting filter on a root handler (pytest's, here) may rewrite the record later.
        self.records.append((record.levelno, record.getMessage()))

    def text(self) -> str:
        return "\n".join(m for _, m in self.records)

    def json(self, event: str = "request") -> list[tuple[int, dict]]:
        out = [(level, orjson.loads(m)) for level, m in self.records]
        return [(level, line) for level, line in out if line["event"] == event]

    def wait(self, count: int, event: str = "request") -> list[tuple[int, dict]]:
        deadline = time.monotonic() + 10  # the line is written as the response ends: allow the server a moment
        while len(self.json(event)) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.json(event)


@pytest.fixture
def lines() -> Iterator[Lines]:
    logger = logging.getLogger(LOGGER_NAME)
    handler = Lines()
    logger.addHandler(handler)  # a configured handler: the gateway leaves it in place of its stdout writer
    yield handler
    logger.removeHandler(handler)


def client(gw, key: str = GATEWAY_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0, timeout=10)


def test_one_json_line_per_request_with_what_happened_and_no_secrets(gateway_factory, lines):
    gw = gateway_factory(server={"api_keys": [GATEWAY_KEY], "access_log": "json"})
    raw = client(gw).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": SECRET_PROMPT}])
    [(level, line)] = lines.wait(1)
    assert level == logging.INFO
    assert line["request_id"] == raw.headers["x-tierroute-request-id"]
    assert line["caller"] == caller_id(GATEWAY_KEY)
    assert line["route"] == "/v1/chat/completions" and line["method"] == "POST"
    assert line["status"] == 200 and line["outcome"] == "ok"
    assert line["requested_model"] == "auto"
    assert line["model"] == raw.headers["x-tierroute-model"] == "small"
    assert line["deployment"] == raw.headers["x-tierroute-deployment"]
    assert line["attempts"] == 1 and line["stream"] is False
    assert (line["prompt_tokens"], line["completion_tokens"]) == (11, 5)
    assert line["cost_usd"] == pytest.approx(float(raw.headers["x-tierroute-cost-usd"]))
    assert line["latency_ms"] > 0 and line["overhead_ms"] >= 0
    assert line["ts"].endswith("Z")
    text = lines.text()
    assert GATEWAY_KEY not in text and "SWORDFISH" not in text and "sk-upstream" not in text


def test_streams_embeddings_and_other_routes_are_logged(gateway_factory, lines):
    gw = gateway_factory(server={"access_log": "json"})
    stream = client(gw, "unused").chat.completions.create(
        model="mid", messages=[{"role": "user", "content": "hi"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    r = wire.post(f"{gw.url}/v1/messages", json={"model": "mid", "max_tokens": 50,
                                                  "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200
    found = lines.wait(2)
    assert [(line["route"], line["stream"], line["model"]) for _, line in found] == [
        ("/v1/chat/completions", True, "mid"), ("/v1/messages", False, "mid")]
    assert all(line["caller"] is None for _, line in found)  # no gateway keys: no caller
    # probes and scrapes are not request lines
    assert wire.get(f"{gw.url}/metrics").status_code == 200
    assert wire.get(f"{gw.url}/livez").status_code == 200
    time.sleep(0.2)
    assert len(lines.json()) == 2


def test_refusals_are_warnings_with_their_code(gateway_factory, lines):
    gw = gateway_factory(server={"api_keys": [GATEWAY_KEY], "access_log": "json"})
    bad_key = wire.post(f"{gw.url}/v1/chat/completions", headers={"authorization": "Bearer sk-wrong"},
                         json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
    assert bad_key.status_code == 401
    bad_model = wire.post(f"{gw.url}/v1/chat/completions", headers={"authorization": f"Bearer {GATEWAY_KEY}"},
                           json={"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]})
    assert bad_model.status_code in (400, 404)
    found = lines.wait(2)
    assert [(level, line["status"]) for level, line in found] == [
        (logging.WARNING, 401), (logging.WARNING, bad_model.status_code)]
    assert found[1][1]["error"]  # the refusal's code
    assert "sk-wrong" not in lines.text()


def test_upstream_failures_log_each_attempt_at_warning(gateway_factory, fake_upstream, lines):
    gw = gateway_factory(server={"access_log": "json"},
                         reliability={"retry": {"retries": 0}, "fallbacks": {"small": ["mid"]}})
    fake_upstream.behaviour.status = 500
    r = wire.post(f"{gw.url}/v1/chat/completions", json={"model": "small", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code >= 500
    [(level, line)] = lines.wait(1)
    attempts = lines.wait(2, "upstream_attempt_failed")
    assert level == logging.WARNING and line["status"] == r.status_code and line["attempts"] == 2
    assert line["error"] and line["outcome"] == "error"
    assert [(lvl, a["attempt"], a["deployment"], a["upstream_status"]) for lvl, a in attempts] == [
        (logging.WARNING, 1, "fake/fake-small", 500), (logging.WARNING, 2, "fake/fake-mid", 500)]
    assert all(a["request_id"] == line["request_id"] and a["error"] for _, a in attempts)


def test_text_format_is_key_value(gateway_factory, lines):
    gw = gateway_factory(server={"access_log": "text"})
    client(gw, "unused").chat.completions.create(model="big", messages=[{"role": "user", "content": "hi"}])
    deadline = time.monotonic() + 10
    while not lines.records and time.monotonic() < deadline:
        time.sleep(0.01)
    [(_, text)] = lines.records
    assert "event=request" in text and "route=/v1/chat/completions" in text and "status=200" in text
    assert "model=big" in text and "attempts=1" in text
    assert 'reason=requested' in text


def test_off_means_no_observer_and_no_lines(gateway_factory, lines):
    gw = gateway_factory(server={"access_log": "off"})
    assert gw.router.observer is None
    client(gw, "unused").chat.completions.create(model="big", messages=[{"role": "user", "content": "hi"}])
    time.sleep(0.2)
    assert lines.records == []


def test_served_gateway_writes_lines_to_stdout(gateway_factory, fake_upstream, tmp_path):
    """With no handler configured, the gateway writes lines to stdout itself (through its queue)."""
    import subprocess
    import sys

    config = tmp_path / "tierroute.yaml"
    config.write_text(f"""
providers: {{fake: {{kind: openai, api_base: "{fake_upstream.url}/v1", api_key: sk-upstream}}}}
models: [{{id: m, provider: fake, upstream: fake-m, input_price: 1, output_price: 1, tier: general, context_window: 8000}}]
ledger: {{backend: none}}
server: {{access_log: json}}
""")
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen([sys.executable, "-m", "tierroute", "serve", "--config", str(config), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = wire.post(f"http://127.0.0.1:{port}/v1/chat/completions",
                               json={"model": "m", "messages": [{"role": "user", "content": SECRET_PROMPT}]})
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        assert r.status_code == 200
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    [line] = [orjson.loads(x) for x in out.splitlines() if x.startswith(b"{")]
    assert line["model"] == "m" and line["status"] == 200 and line["level"] == "INFO"
    assert b"SWORDFISH" not in out + err


@pytest.mark.parametrize("fill", [
    dict(),
    dict(request_id="chatcmpl-tr-1", caller="key-abc", outcome="ok", requested_model="auto", model="m-1",
         deployment="p/m-1", attempts=2, stream=True, prompt_tokens=12, completion_tokens=3, cost_usd=1.25e-05,
         overhead_ms=0.0871234, reason="tier general: cheapest of 2 eligible", client_trace="0af7651916cd43dd"),
    dict(requested_model='odd "model"\nlevel=ERROR forged', error="upstream_error", upstream_status=502, status=503,
         outcome="error", reason="a\\b = c"),
])
def test_text_request_line_is_the_generic_rendering(fill: dict) -> None:
    """The request line's hand-written text fast path says exactly what the generic renderer says of the JSON
    format's fields; client-chosen values are quoted and escaped, so none can start a forged line."""
    from tierroute.observability.access_log import AccessLog, RequestRecord, _text

    record = RequestRecord("/v1/chat/completions", "POST", 0.0)
    record.status = 200
    for name, value in fill.items():
        setattr(record, name, value)
    text_log = AccessLog("text", wall_clock=lambda: 1700000000.5)
    json_log = AccessLog("json", wall_clock=lambda: 1700000000.5)
    lines: list[str] = []
    text_log._emit_line = lambda level, line: lines.append(line)  # type: ignore[method-assign]
    json_log._emit = lambda level, fields: lines.append(_text(fields))  # type: ignore[method-assign]
    text_log.request(record, 12.3456789)
    json_log.request(record, 12.3456789)
    assert lines[0] == lines[1]
    assert "\n" not in lines[0]
    assert lines[0].startswith("ts=2023-11-14T22:13:20.500Z level=")
