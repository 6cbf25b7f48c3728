"""Run a real ``tierroute serve`` process (uvicorn, httptools, uvloop) on a free loopback port for a test."""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(tmp_path: Path, upstream_url: str, **sections: Any) -> Path:
    """Two models on one OpenAI-compatible upstream, a SQLite ledger flushed every 20 ms, plus ``sections``."""
    config: dict[str, Any] = {
        "providers": {"local": {"kind": "openai", "api_base": f"{upstream_url}/v1"}},
        "models": [
            {"id": "strong", "provider": "local", "upstream": "fake-strong", "context_window": 128000,
             "input_price": 5.0, "output_price": 15.0, "tier": "general", "quality": 0.9},
            {"id": "cheap", "provider": "local", "upstream": "fake-cheap", "context_window": 128000,
             "input_price": 0.15, "output_price": 0.6, "tier": "general", "quality": 0.7},
        ],
        "ledger": {"path": str(tmp_path / "ledger.db"), "flush_interval_seconds": 0.02},
        **sections,
    }
    path = tmp_path / "tierroute.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class Served:
    """A running ``tierroute serve``: its port, process, and ledger path."""

    def __init__(self, port: int, proc: subprocess.Popen[str], ledger: Path) -> None:
        self.port, self.proc, self.ledger = port, proc, ledger
        self.url = f"http://127.0.0.1:{port}"

    def ledger_rows(self, where: str = "final = 1") -> list[dict[str, Any]]:
        with sqlite3.connect(self.ledger) as db:
            db.row_factory = sqlite3.Row
            try:
                return [dict(r) for r in db.execute(f"SELECT * FROM requests WHERE {where} ORDER BY id")]
            except sqlite3.OperationalError:
                return []  # the ledger has not created its table yet


def wait_for(predicate: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.02)


@contextmanager
def serve(config: Path, *extra: str, preexec_fn: Callable[[], None] | None = None) -> Iterator[Served]:
    """``tierroute serve --config config``; stopped with SIGINT (then killed) when the block ends."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tierroute", "serve", "--config", str(config), "--port", str(port),
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=preexec_fn)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    raise RuntimeError(f"serve did not start: {proc.communicate()[1]}") from None
                time.sleep(0.05)
        ledger = Path(yaml.safe_load(config.read_text())["ledger"]["path"])
        yield Served(port, proc, ledger)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.communicate()
