"""The crash journal on its own: live journals are never taken, dead ones are replayed once, done
segments are deleted, and lines written on an event loop reach the file by the loop's next turn."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from tierroute.journal import LEDGER_ENTRY, SETTLEMENT, Journal, Segment


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def collect(journal: Journal) -> list[tuple[str, Any, Segment]]:
    seen: list[tuple[str, Any, Segment]] = []
    for kind in (LEDGER_ENTRY, SETTLEMENT):
        journal.on(kind, lambda payload, mark, kind=kind: seen.append((kind, payload, mark)))
    return seen


def test_a_live_processs_journal_is_never_adopted(tmp_path):
    alive = Journal(tmp_path)
    alive.append(LEDGER_ENTRY, ["r1"])
    other = Journal(tmp_path)
    seen = collect(other)
    assert other.adopt() == 0 and seen == []
    assert len(alive.pending_segments()) == 1
    alive.close()  # a line not done: left behind, now adoptable
    assert other.adopt() == 1 and seen[0][:2] == (LEDGER_ENTRY, ["r1"])
    other.done(seen[0][2])
    assert other.pending_segments() == [], "a replayed segment is deleted once all its lines are done"
    other.close()
    assert list(tmp_path.iterdir()) == []


def test_closed_segments_are_deleted_once_every_line_is_done(tmp_path):
    clock = Clock()
    journal = Journal(tmp_path, segment_seconds=1.0, clock=clock)
    first = journal.append(SETTLEMENT, ["h1"])
    second = journal.append(LEDGER_ENTRY, ["r1"])
    assert first is second
    clock.now = 1.5
    third = journal.append(LEDGER_ENTRY, ["r2"])
    assert third is not first and len(journal.pending_segments()) == 2
    journal.done(first)
    assert os.path.exists(first.path)  # one line of it is still owed
    journal.done(second)
    assert not os.path.exists(first.path)
    journal.done(third)
    journal.close()
    assert list(tmp_path.iterdir()) == []


def test_an_unreadable_line_is_skipped_and_the_rest_replayed(tmp_path):
    dead = Journal(tmp_path)
    mark = dead.append(LEDGER_ENTRY, ["r1"])
    dead.append(LEDGER_ENTRY, ["r2"])
    with open(mark.path, "ab") as f:
        f.write(b'["L", ["r3"')  # a torn last line
    dead.close()
    journal = Journal(tmp_path)
    seen = collect(journal)
    assert journal.adopt() == 2
    assert [p for _, p, _ in seen] == [["r1"], ["r2"]]


async def test_lines_of_one_loop_turn_are_written_together_by_the_next_turn(tmp_path):
    journal = Journal(tmp_path)
    mark = journal.append(LEDGER_ENTRY, ["r1"])
    journal.append(SETTLEMENT, ["h1"])
    assert Path(mark.path).read_bytes() == b""  # not yet: one write for the whole turn
    await asyncio.sleep(0)
    assert Path(mark.path).read_bytes().count(b"\n") == 2
    journal.done(mark, 2)
    journal.close()
