"""Virtual keys across two gateway processes sharing PostgreSQL (keys, ledger) and Redis (counters):
created on one, used on both; a budget change and a revocation reach both within the poll interval; the
full key appears in no table, log or listing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import openai
import psycopg
import pytest
import requests
import yaml

from ..budgets.test_replicas import free_port
from ..services import postgres_dsn, redis_prefix, redis_url  # noqa: F401 - fixtures

ADMIN = "admin-key-0123456789abcdef"
HI = [{"role": "user", "content": "count to three"}]
POLL = 0.5


@pytest.fixture
def replicas(fake_upstream: Any, tmp_path: Path, postgres_dsn: str, redis_url: str, redis_prefix: str) -> Any:
    config = {
        "providers": {"fake": {"kind": "openai", "api_base": f"{fake_upstream.url}/v1", "api_key": "sk-upstream"}},
        "models": [{"id": "small", "provider": "fake", "upstream": "fake-small", "context_window": 4000,
                    "max_output_tokens": 1024, "input_price": 0.1, "output_price": 0.2, "tier": "general"},
                   {"id": "big", "provider": "fake", "upstream": "fake-big", "context_window": 4000,
                    "max_output_tokens": 1024, "input_price": 10, "output_price": 30, "tier": "reasoning"}],
        "ledger": {"backend": "postgres", "dsn": postgres_dsn, "flush_interval_seconds": 0.05,
                   "journal_dir": str(tmp_path / "journal")},
        "limits": {"state": {"backend": "redis", "url": redis_url, "prefix": redis_prefix}},
        "server": {"admin_key": ADMIN},
        "keys": {"enabled": True, "poll_interval_seconds": POLL},
    }
    path = tmp_path / "tierroute.yaml"
    path.write_text(yaml.safe_dump(config))
    ports = [free_port(), free_port()]
    logs = [tmp_path / f"replica{i}.log" for i in range(2)]
    env = {**os.environ, "TIERROUTE_CONFIG": str(path)}
    procs = [subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "tierroute.bootstrap:gateway_app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "info"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        for port, log in zip(ports, logs)]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    deadline = time.monotonic() + 60
    for url, proc in zip(urls, procs):
        while True:
            assert proc.poll() is None, f"replica exited: {logs[urls.index(url)].read_text()}"
            try:
                if requests.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "replica did not start"
            time.sleep(0.1)
    yield urls, logs, postgres_dsn
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=20)


def status(url: str, key: str, model: str = "small") -> int:
    try:
        openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=10).chat.completions.create(
            model=model, messages=HI, max_tokens=5)
        return 200
    except openai.APIStatusError as exc:
        return exc.status_code


def until(check: Any, seconds: float = 15.0) -> float:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < seconds, f"not true within {seconds} s"
        time.sleep(0.05)
    return time.monotonic() - start


def test_key_lifecycle_across_two_replicas(replicas):
    (a, b), logs, dsn = replicas
    admin = {"authorization": f"Bearer {ADMIN}"}
    created = requests.post(f"{a}/admin/keys", headers=admin, timeout=10, json={
        "name": "shared", "team": "research", "models": ["small"],
        "budgets": [{"scope": "caller", "window": "day", "usd": 0.00001}]}).json()
    secret = created["key"]
    # created on A, works on both within the poll interval
    for url in (a, b):
        until(lambda url=url: status(url, secret) == 200)
    assert status(b, secret, "big") == 403
    # one budget across both: $0.00001 at $0.0000021 a request is 4 requests in all, wherever they land
    answered = 0
    for i in range(12):
        answered += status((a, b)[i % 2], secret) == 200
    assert 1 <= answered <= 4  # (some of the 4 were spent by the readiness checks above)
    assert status(a, secret) == 429 and status(b, secret) == 429
    # raising the budget on B lifts the refusal on both
    r = requests.patch(f"{b}/admin/keys/{created['id']}", headers=admin, timeout=10,
                       json={"budgets": [{"scope": "caller", "window": "day", "usd": 1.0}]})
    assert r.status_code == 200, r.text
    for url in (a, b):
        until(lambda url=url: status(url, secret) == 200)
    # revoked through B: refused by both within the poll interval (bound generous for a loaded 2-core box)
    revoked_at = time.monotonic()
    assert requests.post(f"{b}/admin/keys/{created['id']}/revoke", headers=admin, timeout=10).status_code == 200
    for url in (a, b):
        until(lambda url=url: status(url, secret) == 401, seconds=10)
    assert time.monotonic() - revoked_at < POLL + 5.0
    # nothing holds the key: tables, the admin listing, the audit log, the replicas' logs
    listing = requests.get(f"{a}/admin/keys?include_revoked=true", headers=admin, timeout=10).text
    audit = requests.get(f"{a}/admin/audit", headers=admin, timeout=10).text
    assert created["id"] in listing and secret not in listing and secret not in audit
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()").fetchall()]
        for table in tables:
            dump = "\n".join(map(str, conn.execute(f'SELECT * FROM "{table}"').fetchall()))
            assert secret not in dump and secret[10:30] not in dump, table
        callers = {r[0] for r in conn.execute("SELECT DISTINCT caller FROM requests").fetchall()}
    assert f"vk-{created['id']}" in callers
    for log in logs:
        assert secret not in log.read_text(errors="replace")
