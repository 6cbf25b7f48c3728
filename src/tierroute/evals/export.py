"""Judged pairs as outcome data (the format ``tierroute train`` reads): each judged request scores both arms.

Only judgments recorded with ``evals.store_prompts: true`` carry the messages; the others are counted, not
written. A win scores the routed arm 1 and the reference 0, a loss the reverse, and a tie scores both 1: the
judge found the cheaper answer as good, which is what a router should learn to exploit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

import orjson

from ..ledger.base import Ledger

DATASET = "judged"
SCORES = {"win": (1.0, 0.0), "loss": (0.0, 1.0), "tie": (1.0, 1.0)}


@dataclass(frozen=True, slots=True)
class JudgedCounts:
    written: int
    without_prompt: int


def export_judged(ledger: Ledger, out: IO[bytes], *, since_ts: float | None = None) -> JudgedCounts:
    written = skipped = 0
    for j in ledger.judgments(since_ts):
        if j.verdict not in SCORES or not j.routed_model or not j.reference_model:
            continue
        detail = orjson.loads(j.detail) if j.detail else {}
        if not detail.get("messages"):
            skipped += 1
            continue
        routed, reference = SCORES[j.verdict]
        record = {"id": j.request_id, "dataset": DATASET, "category": j.route,
                  "messages": detail["messages"],
                  "outcomes": {j.routed_model: {"score": routed, "response": detail.get("routed_answer")},
                               j.reference_model: {"score": reference, "response": detail.get("reference_answer")}}}
        out.write(orjson.dumps(record) + b"\n")
        written += 1
    return JudgedCounts(written=written, without_prompt=skipped)
