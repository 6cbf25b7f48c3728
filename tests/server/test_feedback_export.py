"""Label answered requests through POST /v1/feedback and export them as outcome data to train on."""

from __future__ import annotations

import http.client
import subprocess
import sys

import openai
import orjson
import yaml


def post(gw, path: str, body: object) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    conn.request("POST", path, body=orjson.dumps(body), headers={"content-type": "application/json"})
    resp = conn.getresponse()
    return resp.status, orjson.loads(resp.read())


def test_feedback_then_export(gateway_factory, tmp_path):
    gw = gateway_factory(ledger={"path": str(tmp_path / "ledger.db"), "store_prompts": True, "flush_interval_seconds": 0.02})
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0)
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "What is 2+2?"}]
    ids = []
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(model="auto", messages=messages)
        ids.append(raw.headers["x-tierroute-request-id"])
    assert post(gw, "/v1/feedback", {"request_id": ids[0], "score": 1, "source": "user"}) == (202, {"status": "recorded"})
    assert post(gw, "/v1/feedback", {"request_id": ids[0], "score": 0.5})[0] == 202
    status, error = post(gw, "/v1/feedback", {"request_id": ids[1], "score": 3})
    assert status == 400 and error["error"]["param"] == "score"
    status, error = post(gw, "/v1/feedback", {"score": 1})
    assert status == 400 and error["error"]["param"] == "request_id"
    gw.router.ledger.flush()

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"ledger": {"path": str(tmp_path / "ledger.db")}}))
    out = tmp_path / "traffic.jsonl"
    result = subprocess.run([sys.executable, "-m", "tierroute", "export", "--config", str(config), "--out", str(out)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "wrote 1 labelled requests" in result.stdout
    (item,) = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert item["id"] == ids[0] and item["dataset"] == "traffic"
    assert item["messages"] == messages
    assert item["outcomes"] == {"small": {"score": 0.75, "cost": item["outcomes"]["small"]["cost"]}}
    assert item["outcomes"]["small"]["cost"] > 0


def test_exported_traffic_trains_a_router(gateway_factory, tmp_path):
    """The loop the export exists for: route, label, export, train. Requests went to different models, so each
    exported line scores one model, and `tierroute train` fits each model on the requests it answered."""
    gw = gateway_factory(ledger={"path": str(tmp_path / "ledger.db"), "store_prompts": True,
                                 "flush_interval_seconds": 0.02})
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0)
    for i in range(24):
        model = ("small", "mid", "big")[i % 3]
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": f"question {i} about {'maths' if i % 2 else 'poems'}"}])
        score = 0.0 if model == "small" and i % 2 else 1.0
        assert post(gw, "/v1/feedback", {"request_id": raw.headers["x-tierroute-request-id"], "score": score})[0] == 202
    gw.router.ledger.flush()
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"ledger": {"path": str(tmp_path / "ledger.db")}}))
    out, router = tmp_path / "traffic.jsonl", tmp_path / "router.npz"
    for args in (["export", "--config", str(config), "--out", str(out)],
                 ["train", "--data", str(out), "--out", str(router), "--bits", "10", "--json"]):
        result = subprocess.run([sys.executable, "-m", "tierroute", *args], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
    summary = orjson.loads(result.stdout)
    assert summary["items"] == 24 and set(summary["models"]) == {"small", "mid", "big"}
    assert {m: c["items"] for m, c in summary["calibration"].items()} == {"small": 8, "mid": 8, "big": 8}
