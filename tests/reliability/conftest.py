"""Three fake upstreams serving one model, and gateways over them with small reliability windows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest


from ..conftest import RunningGateway
from ..fakes.chaos import chaos_settings, start_upstreams
from ..fakes.openai_upstream import FakeOpenAI

# Windows small enough that each scenario runs in a few seconds.
FAST_RELIABILITY: dict[str, Any] = {
    "retry": {"initial_seconds": 0.01, "max_seconds": 0.1},
    "breaker": {"consecutive_failures": 3, "min_requests": 10, "window_seconds": 2, "cooldown_seconds": 1},
    "balancer": {"decay_seconds": 0.3},
}


@pytest.fixture(scope="session")
def upstream_servers() -> list[FakeOpenAI]:
    return start_upstreams(3)


@pytest.fixture
def upstreams(upstream_servers: list[FakeOpenAI]) -> Iterator[list[FakeOpenAI]]:
    for u in upstream_servers:
        u.reset()
    yield upstream_servers
    for u in upstream_servers:
        u.reset()


@pytest.fixture
def chaos_gateway(upstreams: list[FakeOpenAI], tmp_path: Path, serve_settings: Any) -> Any:
    def start(*, timeouts: dict[str, float] | None = None, **reliability: Any) -> RunningGateway:
        """``timeouts``: provider timeout settings (``chaos_settings`` keywords); the rest: ``reliability:``."""
        return serve_settings(chaos_settings([u.url for u in upstreams], str(tmp_path / "ledger.db"),
                                             reliability={**FAST_RELIABILITY, **reliability}, **(timeouts or {})))

    return start


def async_client(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0, timeout=10)
