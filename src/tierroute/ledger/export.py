"""Export labelled traffic in the outcome format of ``evaluation/`` so routers can train on it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

import orjson

from .base import Ledger

DATASET = "traffic"


@dataclass(frozen=True, slots=True)
class ExportCounts:
    written: int
    without_prompt: int


def export_outcomes(ledger: Ledger, out: IO[bytes], *, since_ts: float | None = None) -> ExportCounts:
    """One JSON line per labelled, answered request: its messages and the answering model's score and cost.

    Requests recorded without their prompt (``ledger.store_prompts: false``) cannot be trained on and are
    counted, not written.
    """
    written = skipped = 0
    for item in ledger.labelled(since_ts):
        if not item.prompt:
            skipped += 1
            continue
        record = {
            "id": item.request_id,
            "dataset": DATASET,
            "messages": orjson.loads(item.prompt),
            "outcomes": {item.model: {"score": item.score, "cost": item.cost_usd}},
        }
        out.write(orjson.dumps(record) + b"\n")
        written += 1
    return ExportCounts(written=written, without_prompt=skipped)
