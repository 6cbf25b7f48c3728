"""kill -9 of a gateway loses no answered request from the ledger: the next process replays its journal.

Before the journal, the batch in flight died with the process (0 of 20 requests recorded when it was
killed 0.1 s after answering them, while Redis had counted them). Real gateway processes, real SIGKILL,
SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from ..budgets.test_replicas import BODY, Replicas


def write_config(path: Path, upstream: str, ledger: dict[str, Any], journal_dir: Path) -> Path:
    config = {
        "providers": {"fake": {"kind": "openai", "api_base": f"{upstream}/v1", "api_key": "sk-upstream"}},
        "models": [{"id": "small", "provider": "fake", "upstream": "fake-small", "context_window": 4000,
                    "max_output_tokens": 1024, "input_price": 0.1, "output_price": 0.2, "tier": "general"}],
        # a long flush interval: the batch is certainly still in memory when the process is killed
        "ledger": {**ledger, "flush_interval_seconds": 1.0, "journal_dir": str(journal_dir)},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def recorded(ledger: dict[str, Any]) -> list[str]:
    if ledger["backend"] == "sqlite":
        conn = sqlite3.connect(ledger["path"])
        try:
            return [r[0] for r in conn.execute("SELECT request_id FROM requests")]
        except sqlite3.OperationalError:
            return []
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(ledger["dsn"], autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT request_id FROM requests")]


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_settings(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "sqlite":
        return {"backend": "sqlite", "path": str(tmp_path / "ledger.db")}
    return {"backend": "postgres", "dsn": request.getfixturevalue("postgres_dsn")}


async def test_sigkill_after_answering_20_requests_loses_none_of_them(fake_upstream, ledger_settings, tmp_path):
    journal = tmp_path / "journal"
    config = write_config(tmp_path / "tierroute.yaml", fake_upstream.url, ledger_settings, journal)
    first = Replicas(config, 1)
    second: Replicas | None = None
    try:
        await first.wait_ready()
        url = f"http://127.0.0.1:{first.ports[0]}/v1/chat/completions"
        async with aiohttp.ClientSession() as http:
            async def one() -> str:
                async with http.post(url, json=BODY) as r:
                    assert r.status == 200, await r.text()
                    return r.headers["x-tierroute-request-id"]

            answered = await asyncio.gather(*(one() for _ in range(20)))
        await asyncio.sleep(0.1)
        first.procs[0].send_signal(signal.SIGKILL)
        first.procs[0].wait(5)
        before = recorded(ledger_settings)
        assert len(before) < 20, "the batch was still in flight when the process died"
        assert list(journal.glob("*.log")), "the journal holds what the dead process owed"

        second = Replicas(config, 1)  # the next process replays the journal at start-up
        await second.wait_ready()
        deadline = time.monotonic() + 20
        while len(recorded(ledger_settings)) < 20 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)  # one more flush interval: nothing is written twice
        ids = recorded(ledger_settings)
        assert sorted(ids) == sorted(answered), "every answered request recorded exactly once"
    finally:
        first.stop()
        if second is not None:
            second.stop()
    assert not list(journal.glob("*.log")), "a clean stop leaves no journal behind"
    assert not list(journal.glob("*.lock"))
