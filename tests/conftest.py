"""Shared fixtures: a fake OpenAI upstream and a real gateway, both on loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tierroute.config import Settings, parse_settings
from tierroute.evaluation.data import load_outcomes
from tierroute.evaluation.train import train_router
from tierroute.ledger import SQLiteLedger
from tierroute.policies.artifact import save_artifact
from tierroute.policies.encoders.endpoint import EndpointEncoder
from tierroute.router import Router
from tierroute.server import create_app
from tierroute.tokens import preload

from .fakes.openai_embeddings import FakeEmbeddings
from .fakes.openai_upstream import FakeOpenAI
from .outcome_samples import GSM8K, sample

# Redis and PostgreSQL fixtures (skipped, or failed under TIERROUTE_REQUIRE_SERVICES=1, when missing).
pytest_plugins = ["tests.services"]

GATEWAY_KEY = "sk-test-gateway"


@pytest.fixture(scope="session", autouse=True)
def tokenizer_loaded() -> None:
    """Gateways load the tokenizer in the background and estimate until it is there; tests that check exact
    counts need it from the first request."""
    preload(wait=True)


@pytest.fixture(scope="session")
def fake_upstream_server() -> FakeOpenAI:
    return FakeOpenAI().start()


@pytest.fixture
def fake_upstream(fake_upstream_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    fake_upstream_server.reset()
    yield fake_upstream_server
    fake_upstream_server.reset()


@pytest.fixture(scope="session")
def embeddings_server() -> FakeEmbeddings:
    return FakeEmbeddings().start()


@pytest.fixture
def embeddings(embeddings_server: FakeEmbeddings) -> Iterator[FakeEmbeddings]:
    """An OpenAI-compatible ``/v1/embeddings`` server on loopback, its behaviour reset around each test."""
    embeddings_server.reset()
    yield embeddings_server
    embeddings_server.reset()


@pytest.fixture(scope="session")
def encoder_router(embeddings_server: FakeEmbeddings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A router file trained (fast settings, 300 GSM8K items) with the fake endpoint encoder's embeddings."""
    data = load_outcomes(sample(GSM8K)).subset(list(range(300)))
    enc = EndpointEncoder(base_url=f"{embeddings_server.url}/v1", model="fake-embed")
    artifact, _ = train_router(data, bits=12, c_grid=(1.0,), weightings=("tf",), second_stage=False, encoder=enc)
    path = tmp_path_factory.mktemp("enc-router") / "router.npz"
    save_artifact(artifact, path)
    return path


def fake_settings(upstream_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    """Three priced models in three tiers, all served by the fake upstream."""
    raw: dict[str, Any] = {
        "providers": {"fake": {"kind": "openai", "api_base": f"{upstream_url}/v1", "api_key": "sk-upstream"}},
        "models": [
            {"id": "big", "provider": "fake", "upstream": "fake-big", "context_window": 200000, "max_output_tokens": 8192,
             "input_price": 10.0, "output_price": 30.0, "tier": "reasoning", "quality": 0.95,
             "capabilities": ["tools", "vision", "json"]},
            {"id": "mid", "provider": "fake", "upstream": "fake-mid", "context_window": 32000, "max_output_tokens": 4096,
             "input_price": 1.0, "output_price": 2.0, "tier": "general", "quality": 0.8, "capabilities": ["tools", "json"]},
            {"id": "small", "provider": "fake", "upstream": "fake-small", "context_window": 4000, "max_output_tokens": 1024,
             "input_price": 0.1, "output_price": 0.2, "tier": "general", "quality": 0.6, "capabilities": ["json"]},
        ],
        "tiers": [{"name": "reasoning"}, {"name": "general"}, {"name": "extraction", "models": ["small"]}],
        "ledger": {"path": str(tmp_path / "ledger.db"), "flush_interval_seconds": 0.02},
    }
    for key, value in overrides.items():
        raw[key] = value
    return parse_settings(raw, source="test", environ={})


class RunningGateway:
    def __init__(self, router: Router) -> None:
        self.router = router
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(router), log_level="warning", access_log=False, lifespan="on",
                                loop="uvloop", http="httptools")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("gateway did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def serve_settings() -> Iterator[Any]:
    """Start a real gateway on loopback for a Settings (SQLite ledger, optional guards/policy); all stop after."""
    running: list[RunningGateway] = []

    def start(settings: Settings, **router_options: Any) -> RunningGateway:
        ledger = SQLiteLedger(settings.ledger.path, flush_interval_seconds=0.02)
        gw = RunningGateway(Router(settings, ledger=ledger, **router_options))
        running.append(gw)
        return gw

    yield start
    for gw in running:
        gw.stop()


@pytest.fixture
def gateway_factory(fake_upstream: FakeOpenAI, tmp_path: Path, serve_settings: Any) -> Any:
    def start(**overrides: Any) -> RunningGateway:
        return serve_settings(fake_settings(fake_upstream.url, tmp_path, **overrides))

    return start


@pytest.fixture
def gateway(gateway_factory: Any) -> RunningGateway:
    return gateway_factory()


@pytest.fixture
def keyed_gateway(gateway_factory: Any) -> RunningGateway:
    return gateway_factory(server={"api_keys": [GATEWAY_KEY]})
