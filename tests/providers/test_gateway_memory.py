"""What a hostile upstream costs a real gateway process, measured as its peak resident memory (VmHWM, reset
through /proc/<pid>/clear_refs before each request): a 100 MB answer, a 100 MB error, a gzip bomb, and a
stream relayed to a client that stopped reading. Before the limits these cost +433 MB, the whole 100 MB
relayed, +670 MB and ~27 MB a second; the bounds below are generous multiples of the limits."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import yaml

import tierroute

from .conftest import MODELS, OPENAI_MODELS, hostile_config

MB = 1024 * 1024
pytestmark = pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to read peak RSS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GatewayProcess:
    def __init__(self, config: Path) -> None:
        self.port = free_port()
        src = str(Path(tierroute.__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen([sys.executable, "-m", "tierroute", "serve", "--config", str(config),
                                      "--port", str(self.port), "--log-level", "error"],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}")
            try:
                if self.request("GET", "/health")[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("gateway did not start")
            time.sleep(0.1)

    def _status(self, field: str) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB -> MB
        raise KeyError(field)

    def reset_peak(self) -> float:
        """Reset the peak to the current RSS and return it (MB)."""
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")
        return self._status("VmRSS")

    def peak(self) -> float:
        return self._status("VmHWM")

    def settle(self, quiet_seconds: float = 1.0, limit_seconds: float = 30.0) -> None:
        """Wait until the process's memory stops growing: the tokenizer's vocabularies (about 60 MB) load in a
        background thread after start-up, and are not what these tests measure."""
        deadline = time.monotonic() + limit_seconds
        last, still_since = self._status("VmRSS"), time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - still_since < quiet_seconds:
            time.sleep(0.1)
            now = self._status("VmRSS")
            if now > last + 1:
                last, still_since = now, time.monotonic()

    def request(self, method: str, path: str, body: dict | None = None, timeout: float = 60) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=orjson.dumps(body) if body is not None else None,
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def chat(model: str, scenario: str, *, stream: bool = False) -> dict:
    return {"model": model, "stream": stream, "max_tokens": 20,
            "messages": [{"role": "user", "content": f"scenario: {scenario}"}]}


@pytest.fixture(scope="module")
def gateway(hostile, tmp_path_factory) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("memory")
    config = tmp / "tierroute.yaml"
    config.write_text(yaml.safe_dump(hostile_config(hostile.url, str(tmp / "ledger.db"))))
    gw = GatewayProcess(config)
    try:
        for model in MODELS:  # first use creates each provider's client: not what is measured
            assert gw.request("POST", "/v1/chat/completions", chat(model, "ok"))[0] == 200
        gw.settle()
        yield gw
    finally:
        gw.stop()


def measured(gw: GatewayProcess, body: dict) -> tuple[int, dict, float]:
    before = gw.reset_peak()
    status, payload = gw.request("POST", "/v1/chat/completions", body)
    grown = gw.peak() - before
    assert len(payload) < 16 * 1024, f"{len(payload)} bytes relayed"
    return status, orjson.loads(payload), grown


@pytest.mark.parametrize("model", list(MODELS))
def test_a_100_mb_answer_is_refused_at_the_body_limit(gateway, model):
    status, body, grown = measured(gateway, chat(model, "big-body"))
    assert status == 503 and "response too large" in body["error"]["message"], body
    assert grown < 150, f"+{grown:.0f} MB for a refused 100 MB answer (limit 32 MB)"


@pytest.mark.parametrize("model", OPENAI_MODELS)
def test_a_100_mb_error_is_relayed_as_a_short_message(gateway, model):
    status, body, grown = measured(gateway, chat(model, "big-error"))
    assert status == 503 and f"p-{model} answered 500: " in body["error"]["message"]
    assert len(body["error"]["message"]) < 2200
    assert grown < 40, f"+{grown:.0f} MB for a 100 MB error body (error limit 256 KB)"


@pytest.mark.parametrize("model", list(MODELS))
def test_a_gzip_bomb_is_a_clear_upstream_error(gateway, model):
    status, body, grown = measured(gateway, chat(model, "gzip-bomb"))
    assert status == 503 and "response too large" in body["error"]["message"], body
    assert grown < 150, f"+{grown:.0f} MB for 250 KB of gzip inflating to 256 MB (limit 32 MB)"


@pytest.mark.parametrize("model", OPENAI_MODELS)
def test_a_legitimate_gzip_answer_still_works(gateway, model):
    status, payload = gateway.request("POST", "/v1/chat/completions", chat(model, "gzip-ok"))
    assert status == 200 and orjson.loads(payload)["choices"][0]["message"]["content"] == "compressed hello"


@pytest.mark.parametrize("model", OPENAI_MODELS)
def test_a_client_that_stops_reading_a_stream_holds_the_upstream_back(gateway, hostile, model):
    before = gateway.reset_peak()
    data = orjson.dumps(chat(model, "endless-stream", stream=True))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.connect(("127.0.0.1", gateway.port))
    try:
        sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        time.sleep(1.0)  # the pipes fill up
        sent_at = hostile.stream_bytes_sent
        time.sleep(3.0)  # ~80 MB at the unbounded rate
        held_back = hostile.stream_bytes_sent - sent_at
        grown = gateway.peak() - before
    finally:
        sock.close()
    assert held_back < 4 * MB, f"the upstream sent {held_back / MB:.0f} MB more to a stalled client"
    assert grown < 40, f"+{grown:.0f} MB while the client did not read"
    # Once the client has gone, the gateway stops pulling the upstream (not at the 30 s total timeout).
    time.sleep(1.0)
    after_close = hostile.stream_bytes_sent
    time.sleep(1.0)
    assert hostile.stream_bytes_sent - after_close < MB, "the gateway keeps reading for a client that left"
    assert gateway.request("GET", "/health")[0] == 200
