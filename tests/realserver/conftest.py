"""The real llama.cpp server and a real `tierroute serve` in front of it, once per session.

Skipped, naming the build command, where ``bench/real_server/build.sh`` has not been run on this machine.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tierroute.discovery import local_model_specs, probe_local_servers
from tierroute.types import ModelSpec

from .llama_server import LlamaServer, find_build, free_port


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    build, why = find_build()
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.realserver)
            if build is None:
                item.add_marker(pytest.mark.skip(reason=why))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "realserver: needs the llama.cpp server built by bench/real_server/build.sh")


@pytest.fixture(scope="session")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    build, why = find_build()
    if build is None:
        pytest.skip(why)
    server = LlamaServer(build, tmp_path_factory.mktemp("llama") / "server.log").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def discovered(llama: LlamaServer) -> ModelSpec:
    """The one model, as tierroute's discovery finds it on the real server."""
    (spec,) = local_model_specs(asyncio.run(probe_local_servers({"llamacpp": f"{llama.url}/v1"})))
    return spec


@dataclass
class Gateway:
    url: str
    config: Path
    ledger: Path
    model: str
    proc: subprocess.Popen[str]


@pytest.fixture(scope="session")
def gateway(llama: LlamaServer, discovered: ModelSpec, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """`tierroute serve` with the model as discovery describes it, its SQLite ledger flushed every 50 ms."""
    home = tmp_path_factory.mktemp("gateway")
    ledger = home / "ledger.db"
    config = {
        "providers": {"llamacpp": {"kind": "openai", "api_base": f"{llama.url}/v1"}},
        "models": [{"id": discovered.id, "provider": "llamacpp", "upstream": discovered.upstream,
                    "context_window": discovered.context_window, "max_output_tokens": discovered.max_output_tokens,
                    "input_price": 0.0, "output_price": 0.0, "tier": "general",
                    "capabilities": sorted(discovered.capabilities)}],
        "ledger": {"path": str(ledger), "flush_interval_seconds": 0.05},
    }
    path = home / "tierroute.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    with (home / "serve.log").open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "tierroute", "serve", "--config", str(path), "--port", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"tierroute serve did not start: {(home / 'serve.log').read_text()}")
            time.sleep(0.1)
    yield Gateway(url=f"http://127.0.0.1:{port}", config=path, ledger=ledger, model=discovered.id, proc=proc)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
