"""Judged pairs export as outcome data that the training loader reads: both arms scored per request."""

from __future__ import annotations

import asyncio

import orjson
import yaml
from click.testing import CliRunner

from tierroute.cli import main
from tierroute.evaluation.data import load_outcomes
from tierroute.ledger import SQLiteLedger
from tierroute.router import Router

from .conftest import CHAT, MATH, eval_settings


def test_judged_pairs_export_for_training(quality, tmp_path):
    quality.degraded_words.add("math")
    path = tmp_path / "l.db"

    async def run() -> None:
        settings = eval_settings(quality.url, tmp_path, evals={"store_prompts": True})
        async with Router(settings, ledger=SQLiteLedger(path, flush_interval_seconds=0.02)) as router:
            for prompt in (MATH, CHAT, MATH):
                await router.acompletion({"model": "auto", "messages": [{"role": "user", "content": prompt}]})
            await router.evals.drain()

    asyncio.run(run())
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"ledger": {"path": str(path)}}))
    out = tmp_path / "judged.jsonl"
    result = CliRunner().invoke(main, ["export", "--judged", "--config", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote 3 judged pairs" in result.output
    items = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    by_prompt = {i["messages"][0]["content"]: i["outcomes"] for i in items}
    assert by_prompt[MATH]["cheap"]["score"] == 0.0 and by_prompt[MATH]["strong"]["score"] == 1.0
    assert by_prompt[CHAT]["cheap"]["score"] == 1.0 and by_prompt[CHAT]["strong"]["score"] == 1.0
    assert "[q=1]" in by_prompt[MATH]["cheap"]["response"]
    data = load_outcomes(out)
    assert len(data) == 3 and set(data.models) == {"cheap", "strong"}
