"""The garbage collector's settings for a gateway process (``tierroute serve``), not for library callers.

CPython's default thresholds (700, 10, 10) collect the youngest generation every 700 net allocations of
container objects. A gateway under load always has dozens of requests in flight, so every such collection
finds their dicts, lists and coroutines alive, promotes them, and full collections follow that walk every
object the process holds: measured on ``bench/bench_gateway.py`` at c=50, 0.6-0.8 s of collection in a
25,000-request run (about 30 µs a request, with single pauses of 35 ms). So the gateway, once its router is
built, moves everything that exists at start-up (settings, catalog, policies, imported modules) out of the
collector's sight (``gc.freeze``), and collects the young generation every :data:`YOUNG_THRESHOLD`
allocations instead, by which time most of a request's objects are already freed by reference counting.
Memory is still freed as before: reference counting frees almost everything; only reference cycles wait for
a collection, and those come every few hundred requests.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
MIDDLE_THRESHOLD = 20
OLD_THRESHOLD = 100


def tune_for_serving() -> None:
    """Freeze what start-up built and space collections out (see the module docstring)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
