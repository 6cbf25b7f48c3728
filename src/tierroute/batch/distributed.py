"""Several ``tierroute batch`` workers, on several machines, sharing one job through Redis.

Keys share one hash tag, ``{tr-batch:<job>}`` (so the scripts also run on Redis Cluster)::

    :lines   stream + consumer group "workers": one entry per input line (line number, raw line)
    :fed     hash   line, offset, count: where the producer is in the input file
    :eof     string how many lines the input has, once all are fed
    :done    bitmap one bit per line answered (by anyone)  :ndone  how many bits are set
    :producer string the worker feeding the stream (expires unless refreshed)

One worker at a time feeds the stream from its copy of the input (every worker is given the same file, so
any can take over when the producer dies), at most ``WINDOW`` lines ahead of the answers, so Redis memory
stays flat. Every worker reads lines through the consumer group, so each line goes to one worker; it writes
the answer to its own output file and, once that is fsync'd, sets the line's done bit and acknowledges and
deletes the entry. A worker refreshes its claim on the lines it holds; lines of a worker silent for
``reclaim_seconds`` are taken over (XAUTOCLAIM). The budget cap is a counter in the same Redis.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, TextIO

from .._exceptions import InvalidRequest, StateUnavailable
from .budget import BatchBudget
from .concurrency import AdaptiveLimit
from .engine import BatchEngine
from .job import JobOptions, drive, prepare
from .journal import OutputJournal, read_prior
from .lines import BatchItem, parse_item, read_lines
from .progress import Progress

if TYPE_CHECKING:
    from ..router import Router

GROUP = "workers"
WINDOW = 5000  # lines fed but not yet answered, at most
FEED_CHUNK = 200
LOCK_MS = 10_000

# Feed a chunk only while we still hold the producer lock; the position moves in the same step.
_FEED = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
for i = 6, #ARGV, 2 do
  redis.call('XADD', KEYS[2], '*', 'line', ARGV[i], 'data', ARGV[i + 1])
end
redis.call('HSET', KEYS[3], 'line', ARGV[3], 'offset', ARGV[4])
redis.call('HINCRBY', KEYS[3], 'count', tonumber(ARGV[5]))
return 1
"""

# A line is done once: the first worker to finish it sets its bit and counts it; the entry goes either way.
_DONE = """
if redis.call('SETBIT', KEYS[1], tonumber(ARGV[1]), 1) == 0 then redis.call('INCR', KEYS[2]) end
redis.call('XACK', KEYS[3], ARGV[3], ARGV[2])
redis.call('XDEL', KEYS[3], ARGV[2])
return 1
"""


class SharedJob:
    def __init__(self, client: Any, job: str, worker: str, *, reclaim_seconds: float) -> None:
        tag = "{tr-batch:" + job + "}"
        self.client = client
        self.worker = worker
        self.stream, self.fed, self.eof = f"{tag}:lines", f"{tag}:fed", f"{tag}:eof"
        self.done_bits, self.done_count, self.lock = f"{tag}:done", f"{tag}:ndone", f"{tag}:producer"
        self.budget_prefix = f"tr-batch:{job}"
        self.reclaim_ms = max(1, int(reclaim_seconds * 1000))
        self.in_flight: dict[int, bytes] = {}  # line -> stream entry id
        self._feed = client.register_script(_FEED)
        self._done = client.register_script(_DONE)

    async def setup(self) -> None:
        try:
            await self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except Exception as exc:  # BUSYGROUP: another worker made it
            if "BUSYGROUP" not in str(exc):
                raise

    async def finished(self) -> bool:
        eof, done = await self.client.mget(self.eof, self.done_count)
        return eof is not None and int(done or 0) >= int(eof)

    # -- producing -----------------------------------------------------------------------------------
    async def produce(self, path: str) -> None:
        """Feed the stream whenever this worker holds (or can take) the producer lock, until the end."""
        while await self.client.get(self.eof) is None:
            if not await self.client.set(self.lock, self.worker, nx=True, px=LOCK_MS) and \
                    await self.client.get(self.lock) != self.worker.encode():
                await asyncio.sleep(LOCK_MS / 4000)
                continue
            position = await self.client.hgetall(self.fed)
            line, offset = int(position.get(b"line", 0)), int(position.get(b"offset", 0))
            chunk: list[Any] = []
            lost = False
            for number, end, raw in read_lines(path, start_line=line + 1, start_offset=offset):
                chunk += [number, raw.rstrip(b"\r\n")]
                if len(chunk) >= 2 * FEED_CHUNK:
                    if not await self._send(chunk, number, end):
                        lost = True
                        break
                    chunk = []
                    line, offset = number, end
            if lost:
                continue
            if chunk and not await self._send(chunk, chunk[-2], end):
                continue
            count = int(await self.client.hget(self.fed, "count") or 0)
            if await self.client.get(self.lock) == self.worker.encode():
                await self.client.set(self.eof, count)

    async def _send(self, chunk: list[Any], line: int, offset: int) -> bool:
        while True:  # the window: wait for answers before feeding more
            fed = int(await self.client.hget(self.fed, "count") or 0)
            if fed - int(await self.client.get(self.done_count) or 0) < WINDOW:
                break
            if await self.client.get(self.lock) != self.worker.encode():
                return False  # another worker took over feeding while we waited
            await self.client.pexpire(self.lock, LOCK_MS)
            await asyncio.sleep(0.2)
        return bool(await self._feed(keys=[self.lock, self.stream, self.fed],
                                     args=[self.worker, LOCK_MS, line, offset, len(chunk) // 2, *chunk]))

    # -- consuming -----------------------------------------------------------------------------------
    async def items(self, skip_local: Any) -> AsyncIterator[BatchItem]:
        """This worker's share of the lines: its own unacknowledged ones first (a restart), then new ones,
        and any silent worker's."""
        backlog = await self.client.xreadgroup(GROUP, self.worker, {self.stream: "0"}, count=1000)
        own = backlog[0][1] if backlog else []
        for item in await self._accept(own, skip_local):
            yield item
        while True:
            claimed = await self.client.xautoclaim(self.stream, GROUP, self.worker, self.reclaim_ms, "0-0", count=32)
            entries = claimed[1] if claimed else []
            if not entries:
                fresh = await self.client.xreadgroup(GROUP, self.worker, {self.stream: ">"}, count=32, block=500)
                entries = fresh[0][1] if fresh else []
            if not entries:
                if not self.in_flight and await self.finished():
                    return
                continue
            for item in await self._accept(entries, skip_local):
                yield item

    async def _accept(self, entries: list[Any], skip_local: Any) -> list[BatchItem]:
        out = []
        for entry_id, fields in entries:
            if not fields:  # deleted under us: answered by someone
                await self.client.xack(self.stream, GROUP, entry_id)
                continue
            line = int(fields[b"line"])
            if line in skip_local or await self.client.getbit(self.done_bits, line):
                await self._mark_done(line, entry_id)  # in our output already (a restart), or answered elsewhere
                continue
            self.in_flight[line] = entry_id
            out.append(parse_item(line, fields[b"data"]))
        return out

    async def _mark_done(self, line: int, entry_id: bytes) -> None:
        await self._done(keys=[self.done_bits, self.done_count, self.stream], args=[line, entry_id, GROUP])

    async def answered(self, line: int) -> None:
        entry_id = self.in_flight.pop(line, None)
        if entry_id is not None:
            await self._mark_done(line, entry_id)

    async def heartbeat(self) -> None:
        """Keep our claim on the lines we hold, so a slow line is not taken over while we still work on it."""
        while True:
            await asyncio.sleep(self.reclaim_ms / 3000)
            ids = list(self.in_flight.values())
            if ids:
                await self.client.xclaim(self.stream, GROUP, self.worker, 0, ids, justid=True)


async def run_worker(router: Router, options: JobOptions, *, redis_url: str, worker: str | None = None,
                     reclaim_seconds: float = 60.0, progress_out: TextIO | None = None,
                     live: bool = False) -> dict[str, Any]:
    """Work on the shared job named ``options.job_name`` until every line of it is answered (by anyone)."""
    if options.retry_failed:
        raise InvalidRequest("--retry-failed is not supported with --redis: rerun the failed lines as a local job")
    prepare(options)
    try:
        import redis.asyncio as aioredis
    except ImportError as exc:
        raise StateUnavailable("--redis needs the redis package: install tierroute[redis]") from exc
    from ..state.redis import RedisStore

    # A blocking pool: a burst of acknowledgements queues for a connection instead of failing.
    client = aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(
        redis_url, max_connections=32, timeout=30))
    shared = SharedJob(client, options.job_name, worker or f"{socket.gethostname()}-{os.getpid()}",
                       reclaim_seconds=reclaim_seconds)
    # Generous timeouts: a batch can wait a second for Redis, and a timed-out settle would strand a hold.
    store = RedisStore(redis_url, prefix=shared.budget_prefix, timeout_seconds=5.0,
                       connect_timeout_seconds=5.0) if options.max_cost_usd is not None else None
    try:
        await shared.setup()
        prior = read_prior(options.output)
        limit = AdaptiveLimit(initial=min(options.initial_concurrency, options.concurrency), maximum=options.concurrency)
        budget = None
        if store is not None and options.max_cost_usd is not None:
            budget = BatchBudget(store, key=f"batch:{options.job_name}:usd", max_cost_usd=options.max_cost_usd,
                                 catalog=router.catalog,
                                 cascade=router.cascade.models if router.cascade is not None else ())
        engine = BatchEngine(router, job=options.job_name, limit=limit, budget=budget, max_tries=options.max_tries)
        progress = Progress(total=None, already_done=prior.lines, prior_cost_usd=prior.cost_usd,
                            prior_baseline_cost_usd=prior.baseline_cost_usd, prior_failed=prior.failed,
                            stats=engine.stats, limit=limit)
        acks: set[asyncio.Task[None]] = set()

        def on_durable(result: Any) -> None:
            task = asyncio.create_task(shared.answered(result.line))
            acks.add(task)
            task.add_done_callback(acks.discard)

        background = [asyncio.create_task(shared.produce(options.input)), asyncio.create_task(shared.heartbeat())]
        try:
            summary = await drive(engine, shared.items(prior.done), OutputJournal(options.output, fsync=options.fsync,
                                  max_pending=options.concurrency), progress, progress_out=progress_out, live=live,
                                  interval=options.progress_seconds, on_durable=on_durable)
            while acks:
                await asyncio.gather(*list(acks))
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
        eof, done = await client.mget(shared.eof, shared.done_count)
        summary["job_lines"], summary["job_done"], summary["worker"] = int(eof or 0), int(done or 0), shared.worker
        return summary
    finally:
        if store is not None:
            await store.aclose()
        await client.aclose()
