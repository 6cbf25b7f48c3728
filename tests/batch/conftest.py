"""Fake upstreams and a config for batch tests: "small" is served by two deployments (``a`` and ``b``),
"big" (the strongest, for savings) by ``b``; each test sets how they misbehave."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests.fakes.openai_upstream import FakeOpenAI

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def upstreams() -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    a, b = FakeOpenAI().start(), FakeOpenAI().start()
    yield a, b


def write_config(path: Path, a: FakeOpenAI, b: FakeOpenAI, **extra: Any) -> Path:
    config = {
        "providers": {
            "a": {"kind": "openai", "api_base": f"{a.url}/v1", "api_key": "sk-a"},
            "b": {"kind": "openai", "api_base": f"{b.url}/v1", "api_key": "sk-b"},
        },
        "models": [
            {"id": "small", "provider": "a", "upstream": "fake-small", "context_window": 8000, "max_output_tokens": 1000,
             "input_price": 0.1, "output_price": 0.2, "tier": "general", "quality": 0.5},
            {"id": "big", "provider": "b", "upstream": "fake-big", "context_window": 8000, "max_output_tokens": 1000,
             "input_price": 5.0, "output_price": 15.0, "tier": "reasoning", "quality": 0.9},
        ],
        "deployments": [{"model": "small", "provider": "b", "upstream": "fake-small-b"}],
        "router": {"policy": "cheapest"},
        "ledger": {"backend": "none"},
        "reliability": {"retry": {"initial_seconds": 0.01, "max_seconds": 0.05, "max_retry_after_seconds": 0.05}},
        **extra,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def write_input(path: Path, n: int, *, max_tokens: int = 8, batch_format: bool = True) -> Path:
    with open(path, "wb") as f:
        for i in range(1, n + 1):
            body = {"model": "auto", "max_tokens": max_tokens, "messages": [{"role": "user", "content": f"item {i}"}]}
            line = {"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions", "body": body} \
                if batch_format else {"id": f"req-{i}", **body}
            f.write(orjson.dumps(line) + b"\n")
    return path


def read_output(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def answered_items(*fakes: FakeOpenAI) -> list[str]:
    """The item each 200 answer was for, from the upstreams' own logs (failed requests are not answers)."""
    out = []
    for fake in fakes:
        for status, body in list(fake.outcomes):
            if status == 200:
                out.append(body["messages"][-1]["content"])
    return out


def cli(*args: str, config: Path, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tierroute", "batch", *args, "--config", str(config)],
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300, **kwargs)
