"""One contract, every ledger backend: SQLite and PostgreSQL record, read back and summarise the same way."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from tierroute.cli import main
from tierroute.journal import LEDGER_ENTRY, Journal
from tierroute.ledger import Ledger, LedgerEntry, SQLiteLedger
from tierroute.ledger.base import entry_row


Opener = Callable[..., Ledger]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, dict[str, Any], Opener]]:
    """(name, ledger settings, opener); every ledger opened is closed afterwards."""
    opened: list[Ledger] = []
    if request.param == "sqlite":
        settings: dict[str, Any] = {"backend": "sqlite", "path": str(tmp_path / "ledger.db")}

        def open_(**kw: Any) -> Ledger:
            opened.append(SQLiteLedger(settings["path"], flush_interval_seconds=0.01, **kw))
            return opened[-1]
    else:
        from tierroute.ledger.postgres import PostgresLedger

        dsn = request.getfixturevalue("postgres_dsn")
        settings = {"backend": "postgres", "dsn": dsn}

        def open_(**kw: Any) -> Ledger:
            opened.append(PostgresLedger(dsn, flush_interval_seconds=0.01, **kw))
            return opened[-1]
    yield request.param, settings, open_
    for ledger in opened:
        ledger.close()


def entry(i: int, **kw: Any) -> LedgerEntry:
    base: dict[str, Any] = dict(request_id=f"r{i}", ts=1000.0 + i, requested_model="auto", chosen_model="small",
                                deployment="fake/small", caller="key-a", user="u", reason="cheapest", policy="cheapest",
                                prompt_tokens=10, completion_tokens=5, cost_usd=0.001, baseline_cost_usd=0.01,
                                latency_ms=12.5, ttft_ms=3.0, overhead_ms=0.4, stream=bool(i % 2), tags="a,b")
    base.update(kw)
    return LedgerEntry(**base)


def test_entries_round_trip_exactly(backend):
    _, _, open_ = backend
    ledger = open_()
    written = [entry(i) for i in range(4)] + [entry(4, usage_estimated=True)] + [
        entry(9, final=False, status="error", error_kind="timeout", http_status=504, ttft_ms=None, overhead_ms=None,
              user=None)]
    for e in written:
        ledger.record(e)
    ledger.flush()
    assert ledger.entries() == written
    assert ledger.entries(since_ts=1003.0) == written[3:]
    assert ledger.entries(limit=2) == written[:2]


def test_stats_rows_feed_the_summary(backend):
    _, _, open_ = backend
    ledger = open_()
    for i in range(3):
        ledger.record(entry(i))
    ledger.flush()
    rows = ledger.stats_rows()
    assert len(rows) == 3 and rows[0].chosen_model == "small" and rows[0].final == True  # noqa: E712 - SQLite returns 1
    assert sum(r.cost_usd for r in rows) == pytest.approx(0.003)
    assert len(ledger.stats_rows(since_ts=1002.0)) == 1


def test_reopening_keeps_data_and_several_writers_share_one_ledger(backend):
    _, _, open_ = backend
    first, second = open_(), open_()  # two replicas
    for i in range(100):
        (first if i % 2 else second).record(entry(i))
    first.flush()
    second.flush()
    first.close()
    third = open_()  # migrations are idempotent
    assert sorted(e.request_id for e in third.entries()) == sorted(f"r{i}" for i in range(100))


def test_tierroute_stats_works_on_every_backend(backend, tmp_path):
    _, settings, open_ = backend
    ledger = open_()
    for i in range(4):
        ledger.record(entry(i, status="ok" if i else "error"))
    ledger.flush()
    config = tmp_path / "tierroute.yaml"
    config.write_text(yaml.safe_dump({"ledger": settings}))
    result = CliRunner().invoke(main, ["stats", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "requests: 4  errors: 1" in result.output and "spend: $0.004000" in result.output


def test_stats_say_which_token_counts_are_estimates(backend, tmp_path):
    _, settings, open_ = backend
    ledger = open_()
    for i in range(4):
        ledger.record(entry(i, usage_estimated=i == 3))
    ledger.flush()
    assert [r.usage_estimated for r in ledger.stats_rows()] == [False, False, False, True]
    config = tmp_path / "tierroute.yaml"
    config.write_text(yaml.safe_dump({"ledger": settings}))
    result = CliRunner().invoke(main, ["stats", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "token counts estimated by tierroute (the server sent no usage): 1 of 4 attempts" in result.output
    assert " est " in result.output
    data = CliRunner().invoke(main, ["stats", "--config", str(config), "--json"])
    assert '"estimated": 1' in data.output


def test_a_ledger_from_before_the_estimate_flag_migrates_and_keeps_its_rows(backend):
    """Migration 3 adds usage_estimated; rows written before it read back as the server's figures."""
    name, settings, open_ = backend
    old_row = ("r-old", 1.0, "auto", "small", "fake/small", 1, True, None, None, None, None, 10, 5, 0.001, 0.01,
               12.5, None, None, "ok", None, 200, False, None, None)
    columns = "request_id, ts, requested_model, chosen_model, deployment, attempt, final, caller, " \
              "\"user\", reason, policy, prompt_tokens, completion_tokens, cost_usd, baseline_cost_usd, latency_ms, " \
              "ttft_ms, overhead_ms, status, error_kind, http_status, stream, tags, prompt"
    if name == "sqlite":
        import sqlite3

        from tierroute.ledger.sqlite import MIGRATIONS

        conn = sqlite3.connect(settings["path"], isolation_level=None)
        for version in (1, 2):
            for statement in MIGRATIONS[version].split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute("PRAGMA user_version = 2")
        conn.execute(f"INSERT INTO requests ({columns}) VALUES ({', '.join('?' for _ in old_row)})", old_row)
        conn.close()
    else:
        import psycopg

        from tierroute.ledger.postgres import MIGRATIONS

        with psycopg.connect(settings["dsn"], autocommit=True) as conn:
            conn.execute("CREATE TABLE tierroute_schema_version "
                         "(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            for version in (1, 2):
                conn.execute(MIGRATIONS[version])
                conn.execute("INSERT INTO tierroute_schema_version (version) VALUES (%s)", (version,))
            conn.execute(f"INSERT INTO requests ({columns}) VALUES ({', '.join('%s' for _ in old_row)})", old_row)
    ledger = open_()
    ledger.record(entry(1, usage_estimated=True))
    ledger.flush()
    assert [(e.request_id, e.usage_estimated) for e in ledger.entries()] == [("r-old", False), ("r1", True)]


def test_schema_version_is_recorded_and_migrating_again_applies_nothing(backend):
    name, settings, open_ = backend
    open_()
    if name == "sqlite":
        import sqlite3

        from tierroute.ledger.sqlite import SCHEMA_VERSION, migrate

        conn = sqlite3.connect(settings["path"], isolation_level=None)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        migrate(conn)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        conn.close()
        return
    import psycopg

    from tierroute.ledger.postgres import SCHEMA_VERSION, migrate

    with psycopg.connect(settings["dsn"], autocommit=True) as conn:
        assert conn.execute("SELECT max(version) FROM tierroute_schema_version").fetchone()[0] == SCHEMA_VERSION
        assert migrate(conn) == SCHEMA_VERSION  # nothing left to apply


def test_feedback_labels_answered_requests(backend):
    from tierroute.ledger.base import Feedback

    _, _, open_ = backend
    ledger = open_()
    ledger.record(entry(1, prompt='[{"role": "user", "content": "hi"}]'))
    ledger.record(entry(2, status="error", error_kind="timeout", http_status=504))
    ledger.record(entry(3))
    for request_id, score in (("r1", 1.0), ("r1", 0.0), ("r2", 1.0), ("r-unknown", 1.0)):
        ledger.record_feedback(Feedback(request_id=request_id, ts=2000.0, score=score, source="test"))
    ledger.flush()
    (labelled,) = ledger.labelled()
    assert (labelled.request_id, labelled.model, labelled.score) == ("r1", "small", 0.5)
    assert labelled.prompt == '[{"role": "user", "content": "hi"}]' and labelled.cost_usd == 0.001
    assert ledger.labelled(since_ts=1500.0) == []


@pytest.mark.parametrize("journaled", [True, False])
def test_one_bad_row_is_quarantined_and_the_rest_of_its_batch_is_written(backend, tmp_path, journaled):
    """prompt_tokens 1e30 overflows both databases' integer columns; it used to drop the whole batch."""
    _, _, open_ = backend
    journal = Journal(tmp_path / "journal") if journaled else None
    ledger = open_(journal=journal, batch_size=256)
    for i in range(10):
        ledger.record(entry(i))
    ledger.record(entry(666, prompt_tokens=10**30))
    for i in range(10, 20):
        ledger.record(entry(i))
    ledger.flush()
    assert sorted(e.request_id for e in ledger.entries()) == sorted(f"r{i}" for i in range(20))
    if journal is not None:
        quarantined = (tmp_path / "journal" / "quarantine.jsonl").read_text()
        assert '"r666"' in quarantined and "1000000000000000000000000000000" in quarantined
        ledger.close()
        journal.close()
        assert journal.pending_segments() == []  # every line done: the good ones written, the bad one kept aside


def test_a_dead_processs_journal_is_replayed_once(backend, tmp_path):
    """Entries the dead process had already written are not duplicated; the others are written."""
    _, _, open_ = backend
    dead = Journal(tmp_path / "journal")
    entries = [entry(i) for i in range(4)] + [entry(4, ttft_ms=None, overhead_ms=None, user=None, final=False,
                                                    status="error", error_kind="timeout", http_status=504)]
    for e in entries:
        dead.append(LEDGER_ENTRY, entry_row(e))
    dead.close()  # lines not done: left for the next process, as a SIGKILL would leave them
    assert len(dead.pending_segments()) == 1
    plain = open_()
    for e in entries[:3]:  # written before the crash, but not yet marked done in the journal
        plain.record(e)
    plain.flush()
    journal = Journal(tmp_path / "journal")
    ledger = open_(journal=journal)
    assert journal.adopt() == 5
    ledger.flush()
    assert sorted(ledger.entries(), key=lambda e: e.request_id) == entries  # each once, exactly as recorded
    assert journal.adopt() == 0  # adopted once
    ledger.close()
    journal.close()
    assert journal.pending_segments() == []


def test_judgments_round_trip_and_feed_tierroute_evals(backend, tmp_path):
    """Continuous evaluation's judgments (migration 5) on every backend, read back by `tierroute evals`."""
    import orjson

    from tierroute.ledger.base import Judgment

    _, settings, open_ = backend
    ledger = open_()
    route = "intent:math/small"
    rows = [Judgment(request_id=f"r{i}", ts=1000.0 + i, route=route, routed_model="small", reference_model="big",
                     judge="pairwise:judge", verdict=v, judge_cost_usd=0.001, reference_cost_usd=0.01)
            for i, v in enumerate(["tie", "loss", "win", "skipped"])]
    rows.append(Judgment(request_id="r9", ts=1010.0, route=route, routed_model="small", reference_model="big",
                         judge="guard", verdict="degraded", detail='{"reason": "loss established"}'))
    for row in rows:
        ledger.record_judgment(row)
    ledger.flush()
    assert ledger.judgments() == rows
    assert ledger.judgments(since_ts=1002.5) == rows[3:]
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"ledger": settings}))
    result = CliRunner().invoke(main, ["evals", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    (report,) = orjson.loads(result.output)["routes"]
    assert (report["route"], report["samples"], report["judged"], report["wins"], report["ties"], report["losses"],
            report["skipped"], report["guard_state"]) == (route, 4, 3, 1, 1, 1, 1, "degraded")
    assert report["spend_usd"] == pytest.approx(0.044)
    assert report["interval"][0] < 0 < report["interval"][1] and report["verdict"] == "undecided"
    text = CliRunner().invoke(main, ["evals", "--config", str(config)]).output
    assert route in text and "guard on intent:math/small: loss established" in text
