"""Fixtures for continuous evaluation: a fake upstream whose answers have a quality, and settings that route
two classes of prompts (intents) between a cheap and a strong model, judged by a third."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tierroute.config import Settings, parse_settings

from ..fakes.quality_upstream import FakeQuality


@pytest.fixture(scope="session")
def quality_server() -> FakeQuality:
    return FakeQuality().start()


@pytest.fixture
def quality(quality_server: FakeQuality) -> Iterator[FakeQuality]:
    quality_server.degraded_words.clear()
    quality_server.judge_mode = "fair"
    quality_server.failing_models.clear()
    yield quality_server
    quality_server.degraded_words.clear()
    quality_server.judge_mode = "fair"
    quality_server.failing_models.clear()


MATH = "solve this math equation: what is 12 times 7"
CHAT = "write a friendly hello message for my neighbour"


def eval_settings(url: str, tmp_path: Path, *, evals: dict[str, Any] | None = None, **overrides: Any) -> Settings:
    model = {"provider": "fake", "context_window": 16000}
    raw: dict[str, Any] = {
        "providers": {"fake": {"kind": "openai", "api_base": f"{url}/v1", "api_key": "sk-fake"}},
        "models": [
            {**model, "id": "cheap", "upstream": "fake-cheap", "input_price": 0.1, "output_price": 0.2,
             "tier": "general", "quality": 0.5},
            {**model, "id": "strong", "upstream": "fake-strong", "input_price": 5.0, "output_price": 15.0,
             "tier": "general", "quality": 0.9},
            {**model, "id": "judge", "upstream": "fake-judge", "input_price": 1.0, "output_price": 2.0,
             "tier": "judging", "quality": 0.8},
        ],
        "tiers": [{"name": "general"}, {"name": "judging"}],
        "router": {"policy": "cheapest"},
        "intents": {"threshold": 0.1, "routes": [
            {"name": "math", "models": ["cheap", "strong"],
             "utterances": ["solve this math equation", "what is 12 times 7", "compute the integral"]},
            {"name": "chat", "models": ["cheap", "strong"],
             "utterances": ["write a friendly hello message", "say hello to my neighbour", "greet my friend"]},
        ]},
        "ledger": {"path": str(tmp_path / "ledger.db"), "flush_interval_seconds": 0.02},
        "evals": {"enabled": True, "sample_rate": 1.0, "judge_model": "judge", "max_samples_per_minute": 10000,
                  "max_samples_per_hour": 100000,
                  "guard": {"action": "shift", "margin": 0.2, "min_judgments": 5, "refresh_seconds": 0.1},
                  **(evals or {})},
    }
    raw.update(overrides)
    return parse_settings(raw, source="test", environ={})
