"""What a newcomer does: start `tierroute serve`, call it with the openai SDK, find the request in `tierroute stats`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import openai
import orjson
import pytest
import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(tmp_path: Path, upstream_url: str) -> Path:
    config = {
        "providers": {"local": {"kind": "openai", "api_base": f"{upstream_url}/v1"}},
        "models": [
            {"id": "strong", "provider": "local", "upstream": "fake-strong", "context_window": 128000,
             "input_price": 5.0, "output_price": 15.0, "tier": "general", "quality": 0.9},
            {"id": "cheap", "provider": "local", "upstream": "fake-cheap", "context_window": 128000,
             "input_price": 0.15, "output_price": 0.6, "tier": "general", "quality": 0.7},
        ],
        "ledger": {"path": str(tmp_path / "ledger.db"), "flush_interval_seconds": 0.05},
    }
    path = tmp_path / "tierroute.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tierroute", *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def start_serve(config: Path, *extra: str) -> tuple[int, subprocess.Popen[str]]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tierroute", "serve", "--config", str(config), "--port", str(port),
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"serve did not start: {proc.communicate()[1]}")
            time.sleep(0.05)
    return port, proc


@pytest.fixture
def served(tmp_path, fake_upstream):
    config = write_config(tmp_path, fake_upstream.url)
    port, proc = start_serve(config)
    yield config, port, proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)


def test_serve_route_and_stats(served, fake_upstream):
    config, port, proc = served
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": "Hello"}])
    assert raw.parse().choices[0].message.content == "Hello from the fake upstream."
    assert raw.headers["x-tierroute-model"] == "cheap"
    assert fake_upstream.requests[-1]["model"] == "fake-cheap"

    proc.send_signal(signal.SIGINT)  # a clean shutdown flushes the ledger
    proc.wait(timeout=15)
    _, stderr = proc.communicate()
    assert "no API keys configured, so listening on loopback only" in stderr

    stats = run_cli("stats", "--config", str(config), "--json")
    assert stats.returncode == 0, stats.stderr
    data = json.loads(stats.stdout)
    assert data["requests"] == 1 and data["errors"] == 0
    assert data["models"][0]["model"] == "cheap"
    # baseline: the same tokens on "strong" (highest quality prior)
    assert data["baseline_cost_usd"] == pytest.approx((11 * 5.0 + 5 * 15.0) / 1e6)
    assert data["savings_usd"] > 0
    text = run_cli("stats", "--config", str(config))
    assert "saved:" in text.stdout and "cheap" in text.stdout


def test_serve_with_several_workers(tmp_path, fake_upstream):
    config = write_config(tmp_path, fake_upstream.url)
    port, proc = start_serve(config, "--workers", "2")
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=2)
        for _ in range(6):
            answer = client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
            assert answer.choices[0].message.content == "Hello from the fake upstream."
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    assert "with 2 workers" in stderr
    stats = json.loads(run_cli("stats", "--config", str(config), "--json").stdout)
    assert stats["requests"] == 6, "both workers write the one SQLite ledger"


def test_serve_refuses_public_bind_without_keys(tmp_path, fake_upstream):
    config = write_config(tmp_path, fake_upstream.url)
    result = run_cli("serve", "--config", str(config), "--host", "0.0.0.0", "--port", str(free_port()))
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without API keys" in result.stderr


def test_route_models_chat_and_help(tmp_path, fake_upstream):
    config = write_config(tmp_path, fake_upstream.url)
    route = run_cli("route", "Summarise this paragraph", "--config", str(config), "--json")
    assert route.returncode == 0, route.stderr
    decision = json.loads(route.stdout)
    assert decision["chosen"] == "cheap"
    assert [c["model"] for c in decision["candidates"]] == ["cheap", "strong"]
    assert decision["prompt_tokens_estimate"] > 0
    assert not fake_upstream.requests, "route never calls upstream"
    human = run_cli("route", "hi", "--config", str(config), "--model", "strong")
    assert "chosen: strong" in human.stdout

    models = run_cli("models", "--config", str(config), "--json")
    assert {m["id"] for m in orjson.loads(models.stdout)["models"]} == {"strong", "cheap"}

    chat = run_cli("chat", "Hello there", "--config", str(config))
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout.strip() == "Hello from the fake upstream."
    assert "[cheap via local/fake-cheap;" in chat.stderr
    streamed = run_cli("chat", "Hello there", "--config", str(config), "--stream")
    assert streamed.stdout.strip() == "Hello from the fake upstream."

    for command in ("serve", "chat", "route", "models", "stats"):
        helped = run_cli(command, "--help")
        assert helped.returncode == 0 and "Usage:" in helped.stdout, command


def test_cli_errors_are_one_line(tmp_path, fake_upstream):
    config = write_config(tmp_path, fake_upstream.url)
    result = run_cli("route", "hi", "--config", str(config), "--model", "nope")
    assert result.returncode == 1
    assert result.stderr.startswith("error: model 'nope' not found")
    assert "Traceback" not in result.stderr
    missing = run_cli("models", "--config", str(tmp_path / "absent.yaml"))
    assert missing.returncode == 2 and "configuration file not found" in missing.stderr


def test_no_config_uses_environment(tmp_path, fake_upstream):
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update({"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": f"{fake_upstream.url}/v1"})
    env.pop("TIERROUTE_CONFIG", None)
    result = subprocess.run([sys.executable, "-m", "tierroute", "models", "--json"], capture_output=True, text=True,
                            timeout=60, env=env, cwd=tmp_path)
    ids = {m["id"] for m in json.loads(result.stdout)["models"]}
    assert "gpt-5" in ids and "claude-sonnet-5-5" not in ids
