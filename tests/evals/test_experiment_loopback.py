"""A/B between router versions over real HTTP on loopback: two gateways (two Routers, as two replicas) run the
same experiment, a cheapest arm against a learned one, in front of a fake upstream. Each caller gets the same
arm from either gateway, the arm is in the x-tierroute-arm header and in the ledger (SQLite and PostgreSQL),
and `tierroute experiment report` (a real process) reports each arm's requests and cost from that ledger."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import openai
import orjson
import yaml

from tierroute import Router
from tierroute.ledger.postgres import PostgresLedger
from tierroute.ledger.sqlite import SQLiteLedger

from ..conftest import RunningGateway, fake_settings

KEYS = [f"sk-caller-{i:02d}" for i in range(12)]
EXPERIMENT = {"name": "ab-1", "sticky_by": "caller", "arms": [
    {"name": "base", "policy": "cheapest"},
    {"name": "quality", "policy": "learned", "options": {"lambda": 0}},  # the learned router, quality only
]}
ARM_MODEL = {"base": "small", "quality": "mid"}


def raw_settings(url: str, tmp_path: Path, **ledger: Any) -> dict[str, Any]:
    return {"server": {"api_keys": KEYS, "access_log": "off"}, "router": {"experiment": EXPERIMENT},
            "ledger": {"path": str(tmp_path / "ledger.db"), "flush_interval_seconds": 0.02, **ledger}}


def ask(gw: RunningGateway, key: str, text: str, *, stream: bool = False) -> tuple[str, str, str]:
    """(arm, model, request id) of one answer through the official SDK."""
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)
    messages = [{"role": "user", "content": text}]
    if stream:
        with client.chat.completions.with_streaming_response.create(model="auto", messages=messages,
                                                                    stream=True) as raw:
            assert list(raw.parse())
            headers = raw.headers
    else:
        raw = client.chat.completions.with_raw_response.create(model="auto", messages=messages)
        assert raw.parse().choices[0].message.content
        headers = raw.headers
    assert f"arm {headers['x-tierroute-arm']} of ab-1 (by caller)" in headers["x-tierroute-reason"]
    return headers["x-tierroute-arm"], headers["x-tierroute-model"], headers["x-tierroute-request-id"]


def run_traffic(first: RunningGateway, second: RunningGateway) -> dict[str, tuple[str, str]]:
    """Three requests per caller, spread over both gateways; returns request id -> (caller key, arm)."""
    seen: dict[str, tuple[str, str]] = {}
    arm_of_key: dict[str, str] = {}
    for i, key in enumerate(KEYS):
        for j, (gw, stream) in enumerate(((first, False), (second, False), (second, True))):
            arm, model, request_id = ask(gw, key, f"request {j} from caller {i}", stream=stream)
            assert arm_of_key.setdefault(key, arm) == arm, "a caller changed arm between requests or gateways"
            assert model == ARM_MODEL[arm]
            seen[request_id] = (key, arm)
    assert set(arm_of_key.values()) == {"base", "quality"}
    return seen


def test_arms_are_sticky_across_gateways_and_recorded_in_sqlite(fake_upstream, tmp_path):
    settings = fake_settings(fake_upstream.url, tmp_path, **raw_settings(fake_upstream.url, tmp_path))
    gateways = [RunningGateway(Router(settings, ledger=SQLiteLedger(settings.ledger.path, flush_interval_seconds=0.02)))
                for _ in range(2)]
    try:
        seen = run_traffic(*gateways)
        for gw in gateways:
            gw.router.ledger.flush()
        # feedback on two requests, through the API
        first_id = next(iter(seen))
        client = openai.OpenAI(base_url=f"{gateways[0].url}/v1", api_key=KEYS[0], max_retries=0)
        client.post("/feedback", body={"request_id": first_id, "score": 1.0}, cast_to=object)
        gateways[0].router.ledger.flush()
    finally:
        for gw in gateways:
            gw.stop()
    ledger = SQLiteLedger(settings.ledger.path)
    try:
        rows = [e for e in ledger.entries() if e.final]
    finally:
        ledger.close()
    assert {e.request_id: e.arm for e in rows} == {rid: arm for rid, (_, arm) in seen.items()}
    assert all(e.chosen_model == ARM_MODEL[e.arm] for e in rows)

    # the report, as an operator runs it: a separate process reading the same ledger
    config = tmp_path / "tierroute.yaml"
    config.write_text(yaml.safe_dump({"ledger": {"path": settings.ledger.path}}))
    out = subprocess.run([sys.executable, "-m", "tierroute", "experiment", "report", "--config", str(config),
                          "--json"], capture_output=True, text=True, timeout=120, check=True).stdout
    report = orjson.loads(out)
    arms = {a["arm"]: a for a in report["arms"]}
    counts = Counter(arm for _, arm in seen.values())
    assert {name: a["requests"] for name, a in arms.items()} == dict(counts)
    costs = {arm: [e.cost_usd for e in rows if e.arm == arm] for arm in counts}
    for arm, a in arms.items():
        mean = sum(costs[arm]) / len(costs[arm])
        assert abs(a["cost_per_request"] - mean) < 1e-12
        lo, hi = a["cost_interval"]
        assert lo - 1e-12 <= mean <= hi + 1e-12  # every request of an arm costs the same here
        assert any("rough" in note for note in a["notes"])  # 18 requests an arm: the report says so
    assert sum(a["feedback"] for a in arms.values()) == 1
    promotion = report["promotion"]
    assert promotion["winner"] == "base"  # small is cheaper than mid
    expected = (sum(costs["quality"]) / len(costs["quality"]) - sum(costs["base"]) / len(costs["base"])) \
        * counts["quality"]
    assert abs(promotion["savings_usd"] - expected) < 1e-12 and expected > 0

    text = subprocess.run([sys.executable, "-m", "tierroute", "experiment", "report", "--config", str(config)],
                          capture_output=True, text=True, timeout=120, check=True).stdout
    assert "promoting base (cheapest per request) would have saved" in text


def test_arm_recorded_in_postgres(fake_upstream, tmp_path, postgres_dsn):
    settings = fake_settings(fake_upstream.url, tmp_path, **raw_settings(fake_upstream.url, tmp_path))
    gateways = [RunningGateway(Router(settings, ledger=PostgresLedger(postgres_dsn, flush_interval_seconds=0.02)))
                for _ in range(2)]
    try:
        seen = run_traffic(*gateways)
        for gw in gateways:
            gw.router.ledger.flush()
    finally:
        for gw in gateways:
            gw.stop()
    ledger = PostgresLedger(postgres_dsn)
    try:
        rows = [e for e in ledger.entries() if e.final]
    finally:
        ledger.close()
    assert {e.request_id: e.arm for e in rows} == {rid: arm for rid, (_, arm) in seen.items()}
