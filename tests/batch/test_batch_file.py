"""`tierroute batch` end to end: a real process, real HTTP to fake upstreams on loopback."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import orjson
import pytest

from tests.fakes.openai_upstream import FakeOpenAI

from .conftest import answered_items, cli, read_output, write_config, write_input


def test_a_deployment_that_429s_and_one_that_fails_intermittently_every_line_answered_once(
        tmp_path: Path, upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = upstreams
    a.behaviour.status, a.behaviour.retry_after = 429, "0"
    b.behaviour.failure_rate = 0.15
    n = 3000  # 10,000 in bench/bench_batch.py; this keeps the suite fast on two cores
    config = write_config(tmp_path / "c.yaml", a, b)
    result = cli(str(write_input(tmp_path / "in.jsonl", n)), "--out", str(tmp_path / "out.jsonl"),
                 "--progress", "plain", "--progress-seconds", "0.2", config=config)
    assert result.returncode == 0, result.stderr
    out = read_output(tmp_path / "out.jsonl")
    assert sorted(o["tierroute"]["line"] for o in out) == list(range(1, n + 1))
    assert all(o["error"] is None and o["response"]["status_code"] == 200 for o in out)
    assert {o["custom_id"] for o in out} == {f"req-{i}" for i in range(1, n + 1)}
    answered = Counter(answered_items(a, b))
    assert len(answered) == n and max(answered.values()) == 1  # the upstreams' own logs: each line answered once
    assert any(status == 429 for status, _ in a.outcomes) and any(status == 500 for status, _ in b.outcomes)
    assert f"batch: {n} lines ({n} answered now, 0 before, 0 failed)" in result.stderr
    assert "saved $" in result.stderr and "done," in result.stderr  # progress lines and the summary


def test_plain_chat_bodies_with_an_id_are_accepted(tmp_path: Path, upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = upstreams
    config = write_config(tmp_path / "c.yaml", a, b)
    result = cli(str(write_input(tmp_path / "in.jsonl", 20, batch_format=False)), "--out", str(tmp_path / "o.jsonl"),
                 "--progress", "none", config=config)
    assert result.returncode == 0, result.stderr
    assert {o["custom_id"] for o in read_output(tmp_path / "o.jsonl")} == {f"req-{i}" for i in range(1, 21)}


def test_a_malformed_line_is_reported_by_number_and_the_batch_goes_on(
        tmp_path: Path, upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = upstreams
    config = write_config(tmp_path / "c.yaml", a, b)
    source = write_input(tmp_path / "in.jsonl", 5)
    lines = source.read_bytes().splitlines()
    lines[2] = b'{"custom_id": "broken", "body": {"model": "auto", "messages": [oops'
    lines.insert(4, b'{"custom_id": "no-messages", "body": {"model": "auto"}}')
    source.write_bytes(b"\n".join(lines) + b"\n")
    result = cli(str(source), "--out", str(tmp_path / "o.jsonl"), "--progress", "none", config=config)
    assert result.returncode == 3, result.stderr  # some lines failed
    out = {o["tierroute"]["line"]: o for o in read_output(tmp_path / "o.jsonl")}
    assert sorted(out) == [1, 2, 3, 4, 5, 6]
    assert out[3]["error"]["code"] == "invalid_line" and out[3]["error"]["message"].startswith("line 3: not valid JSON")
    assert out[5]["error"]["code"] == "invalid_line" and "line 5: messages" in out[5]["error"]["message"]
    assert "failures: invalid_line 2" in result.stderr
    assert len(answered_items(a, b)) == 4


def test_a_file_that_is_not_jsonl_is_refused_before_any_request(
        tmp_path: Path, upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = upstreams
    config = write_config(tmp_path / "c.yaml", a, b)
    source = tmp_path / "in.csv"
    source.write_text("id,prompt\n1,hello\n")
    result = cli(str(source), "--out", str(tmp_path / "o.jsonl"), config=config)
    assert result.returncode == 1
    assert "not a JSONL file" in result.stderr and "Traceback" not in result.stderr
    assert not a.requests and not b.requests


@pytest.mark.parametrize("where", ["missing-dir", "under-a-file", "a-directory", "read-only-file"])
def test_an_unwritable_output_is_refused_before_any_request(
        tmp_path: Path, upstreams: tuple[FakeOpenAI, FakeOpenAI], where: str) -> None:
    if where == "read-only-file" and os.geteuid() == 0:
        pytest.skip("root writes into read-only files")
    a, b = upstreams
    config = write_config(tmp_path / "c.yaml", a, b)
    (tmp_path / "plain-file").write_text("x")
    (tmp_path / "ro.jsonl").write_text("")
    (tmp_path / "ro.jsonl").chmod(0o400)
    out = {"missing-dir": tmp_path / "nowhere" / "o.jsonl", "under-a-file": tmp_path / "plain-file" / "o.jsonl",
           "a-directory": tmp_path, "read-only-file": tmp_path / "ro.jsonl"}[where]
    result = cli(str(write_input(tmp_path / "in.jsonl", 3)), "--out", str(out), config=config)
    assert result.returncode in (1, 2) and "--out" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not a.requests and not b.requests


def test_dry_run_prints_the_expected_cost_per_model_without_calling_any(
        tmp_path: Path, upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = upstreams
    config = write_config(tmp_path / "c.yaml", a, b)
    source = write_input(tmp_path / "in.jsonl", 10)
    with open(source, "ab") as f:  # two lines asking for the strong model by name
        for i in (11, 12):
            f.write(orjson.dumps({"custom_id": f"req-{i}", "body": {"model": "big", "max_tokens": 8,
                                                                     "messages": [{"role": "user", "content": "x"}]}}) + b"\n")
    result = cli(str(source), "--out", str(tmp_path / "o.jsonl"), "--dry-run", "--json", config=config)
    assert result.returncode == 0, result.stderr
    summary = orjson.loads(result.stdout)
    assert summary["models"]["small"]["lines"] == 10 and summary["models"]["big"]["lines"] == 2
    total = summary["models"]["small"]["expected_usd"] + summary["models"]["big"]["expected_usd"]
    assert summary["expected_usd"] == pytest.approx(total)
    assert summary["strongest_model_expected_usd"] > summary["expected_usd"] > 0
    assert summary["worst_case_usd"] >= summary["expected_usd"]
    assert not a.requests and not b.requests and not (tmp_path / "o.jsonl").exists()
    text = cli(str(source), "--out", str(tmp_path / "o.jsonl"), "--dry-run", config=config)
    assert "expected total $" in text.stdout and "small" in text.stdout


def test_retry_failed_sends_only_the_failed_lines_again(tmp_path: Path, upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = upstreams
    config = write_config(tmp_path / "c.yaml", a, b)
    source = write_input(tmp_path / "in.jsonl", 40)
    a.behaviour.failure_rate = b.behaviour.failure_rate = 0.9  # some lines fail every try (of the router too)
    a.behaviour.failure_status = b.behaviour.failure_status = 503
    first = cli(str(source), "--out", str(tmp_path / "o.jsonl"), "--max-tries", "1", "--progress", "none", config=config)
    assert first.returncode == 3, first.stderr
    failed = {o["tierroute"]["line"] for o in read_output(tmp_path / "o.jsonl") if o["error"] is not None}
    assert failed and len(read_output(tmp_path / "o.jsonl")) == 40
    answered_before = Counter(answered_items(a, b))
    a.reset(), b.reset()
    again = cli(str(source), "--out", str(tmp_path / "o.jsonl"), "--progress", "none", config=config)
    assert again.returncode == 3 and not a.requests and not b.requests  # a plain re-run: everything is done
    retried = cli(str(source), "--out", str(tmp_path / "o.jsonl"), "--retry-failed", "--progress", "none", config=config)
    assert retried.returncode == 0, retried.stderr
    out = read_output(tmp_path / "o.jsonl")
    assert sorted(o["tierroute"]["line"] for o in out) == list(range(1, 41)) and all(o["error"] is None for o in out)
    resent = Counter(answered_items(a, b))
    assert set(resent) == {f"item {i}" for i in failed}  # only the failed lines were sent again
    assert not set(resent) & set(answered_before)


def test_every_line_is_recorded_in_the_ledger_tagged_with_the_job(
        tmp_path: Path, upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    import sqlite3

    a, b = upstreams
    a.behaviour.status = 503  # every line's first attempt on "a" fails: the ledger records both attempts
    db = tmp_path / "ledger.db"
    config = write_config(tmp_path / "c.yaml", a, b, ledger={"backend": "sqlite", "path": str(db)})
    result = cli(str(write_input(tmp_path / "in.jsonl", 60)), "--out", str(tmp_path / "o.jsonl"), "--job", "nightly",
                 "--progress", "none", config=config)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT request_id, status, tags, cost_usd FROM requests WHERE final = 1").fetchall()
    assert len(rows) == 60 and {r[1] for r in rows} == {"ok"} and {r[2] for r in rows} == {"batch:nightly"}
    out = read_output(tmp_path / "o.jsonl")
    assert {r[0] for r in rows} == {o["response"]["request_id"] for o in out}
    assert sum(r[3] for r in rows) == pytest.approx(sum(o["tierroute"]["cost_usd"] for o in out))


def test_a_full_disk_stops_the_batch_with_a_clear_error_and_a_resumable_file(
        tmp_path: Path, upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    import resource

    a, b = upstreams
    config = write_config(tmp_path / "c.yaml", a, b)
    source, out = write_input(tmp_path / "in.jsonl", 300), tmp_path / "o.jsonl"

    def small_disk() -> None:  # files may not grow past 20 kB: writes beyond fail as on a full disk (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    full = cli(str(source), "--out", str(out), "--progress", "none", config=config, preexec_fn=small_disk)
    assert full.returncode == 1, full.stderr
    assert "writing failed" in full.stderr and "Traceback" not in full.stderr
    data = out.read_bytes()
    kept = data[: data.rfind(b"\n") + 1].splitlines()  # a torn last line, if any, is cut off on resume
    assert 0 < len(kept) < 300 and all(orjson.loads(line)["tierroute"]["line"] for line in kept)
    again = cli(str(source), "--out", str(out), "--progress", "none", config=config)
    assert again.returncode == 0, again.stderr
    assert sorted(r["tierroute"]["line"] for r in read_output(out)) == list(range(1, 301))
