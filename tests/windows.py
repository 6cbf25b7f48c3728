"""Keep tests that count requests in a per-minute window clear of the minute's end: windows start on the minute,
so a test that crossed one would see a fresh window mid-run and count more than the limit."""

from __future__ import annotations

import time


def clear_of_a_minute_boundary(margin_seconds: float = 15.0) -> None:
    into = time.time() % 60
    if into > 60 - margin_seconds:
        time.sleep(60 - into + 0.05)
