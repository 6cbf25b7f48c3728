"""Windows and units: which time bucket a counter belongs to, when it resets, and exact integer amounts."""

from __future__ import annotations

import math
from datetime import UTC, datetime

# USD are counted in nano-dollars so every store adds integers exactly; a tiny request costs ~1e-6 USD.
NANO_USD = 1_000_000_000

_FIXED_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def usd_to_units(usd: float) -> int:
    return round(usd * NANO_USD)


def units_to_usd(units: float) -> float:
    return units / NANO_USD


def bucket(window: str, now: float) -> tuple[str, float | None]:
    """(bucket id, end of the bucket in epoch seconds) for ``now``. Buckets are aligned to UTC: a day budget
    resets at 00:00 UTC, a month budget on the 1st. ``total`` never resets."""
    if window == "total":
        return "all", None
    if window == "month":
        moment = datetime.fromtimestamp(now, UTC)
        year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
        return f"{moment.year:04d}{moment.month:02d}", datetime(year, month, 1, tzinfo=UTC).timestamp()
    length = _FIXED_SECONDS[window]
    start = math.floor(now / length) * length
    return str(start), float(start + length)


def describe_seconds(seconds: float) -> str:
    """'3h 12m', '45s': a reset time a person can read in an error message."""
    seconds = max(0, math.ceil(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if v]
    return " ".join(parts[:2]) or "0s"
