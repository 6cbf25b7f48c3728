"""Workers sharing one job through Redis: each line answered by one worker, a killed worker's lines taken
over (XAUTOCLAIM), and the budget cap holding across workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.fakes.openai_upstream import FakeOpenAI

from .conftest import answered_items, read_output, write_config, write_input
from .test_budget_and_library import LINE_COST, ceiling
from .test_resume import complete_lines


@pytest.fixture
def job(redis_url: str) -> Iterator[str]:
    import redis

    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{{tr-batch:{name}}}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def pending_lines(url: str, job: str, consumer: str) -> set[int]:
    import redis

    client = redis.Redis.from_url(url)
    try:
        stream = f"{{tr-batch:{job}}}:lines"
        entries = client.xpending_range(stream, "workers", min="-", max="+", count=10_000, consumername=consumer)
        lines = set()
        for entry in entries:
            found = client.xrange(stream, min=entry["message_id"], max=entry["message_id"])
            lines.update(int(fields[b"line"]) for _, fields in found)
        return lines
    finally:
        client.close()


def worker(source: Path, out: Path, config: Path, redis: str, job: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tierroute", "batch", str(source), "--out", str(out), "--config",
                             str(config), "--redis", redis, "--job", job, "--progress", "none", "--json", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_workers_split_one_job_and_the_cap_holds_across_them(
        tmp_path: Path, upstreams: tuple[FakeOpenAI, FakeOpenAI], redis_url: str, job: str) -> None:
    a, b = upstreams
    a.behaviour.delay_seconds = b.behaviour.delay_seconds = 0.002
    config = write_config(tmp_path / "c.yaml", a, b)
    n = 1200
    source = write_input(tmp_path / "in.jsonl", n)
    cap = ceiling(config) + 900 * LINE_COST  # room for ~900 of the 1200 lines
    procs = [worker(source, tmp_path / f"o{i}.jsonl", config, redis_url, job, "--max-cost", f"{cap:.9f}")
             for i in range(2)]
    summaries = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=240)
        assert proc.returncode in (0, 3), stderr
        summaries.append(orjson.loads(stdout))
    outputs = [read_output(tmp_path / f"o{i}.jsonl") for i in range(2)]
    assert all(len(o) > 50 for o in outputs)  # both took a share
    lines = Counter(r["tierroute"]["line"] for o in outputs for r in o)
    assert sorted(lines) == list(range(1, n + 1)) and max(lines.values()) == 1  # each line once, across workers
    answered = Counter(answered_items(a, b))
    assert max(answered.values()) == 1
    assert len(answered) * LINE_COST <= cap + 1e-12  # the cap, across both workers, by the upstreams' logs
    assert len(answered) * LINE_COST >= cap - ceiling(config) - 2 * LINE_COST
    refused = [r for o in outputs for r in o if r["error"] is not None]
    assert {r["error"]["code"] for r in refused} == {"budget_exceeded"} and len(refused) == n - len(answered)
    assert all(s["job_done"] == n and s["job_lines"] == n for s in summaries)


def test_a_killed_workers_lines_are_taken_over(
        tmp_path: Path, upstreams: tuple[FakeOpenAI, FakeOpenAI], redis_url: str, job: str) -> None:
    a, b = upstreams
    a.behaviour.delay_seconds = b.behaviour.delay_seconds = 0.01  # slow enough that the kill lands mid-job
    config = write_config(tmp_path / "c.yaml", a, b)
    n = 1500
    source = write_input(tmp_path / "in.jsonl", n)
    first = worker(source, tmp_path / "o0.jsonl", config, redis_url, job, "--worker", "w0", "--concurrency", "16")
    deadline = time.monotonic() + 60
    while len(complete_lines(tmp_path / "o0.jsonl")) < 150 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(first.pid, signal.SIGKILL)
    first.communicate()
    before = complete_lines(tmp_path / "o0.jsonl")
    assert 150 <= len(before) < n
    unacknowledged = pending_lines(redis_url, job, "w0")  # what w0 held when it died, as Redis saw it
    second = worker(source, tmp_path / "o1.jsonl", config, redis_url, job, "--worker", "w1", "--reclaim-after", "1")
    stdout, stderr = second.communicate(timeout=240)
    assert second.returncode == 0, stderr
    assert orjson.loads(stdout)["job_done"] == n
    taken_over = complete_lines(tmp_path / "o1.jsonl")
    assert before | taken_over == set(range(1, n + 1))
    # Only lines w0 held unacknowledged when it died can appear in both outputs, or be answered twice.
    assert before & taken_over <= unacknowledged
    answered = Counter(answered_items(a, b))
    assert set(answered) == {f"item {i}" for i in range(1, n + 1)}
    assert {int(item.split()[1]) for item, count in answered.items() if count > 1} <= unacknowledged
    assert len(unacknowledged) < 300  # a bounded few: in flight, awaiting the disk or the acknowledgement, read ahead
