"""Stop the work done for a client that has hung up.

Under uvicorn a write to a gone client is dropped silently, so a handler relaying an upstream answer never
learns that nobody is listening, and the model generates to the end on the caller's bill. The ASGI way to
learn it is a ``receive()`` that returns ``http.disconnect``; a :class:`Watch` waits for that in a task of
its own and cancels the handler's task when it comes.

Starting that task costs about as much as the rest of a fast request's routing, and a request answered
within :data:`WATCH_AFTER_SECONDS` gains nothing from it (the upstream is done by the time a disconnect
would be seen). So the app's :class:`DisconnectWatcher` keeps the waiting requests oldest first and, with
one timer for all of them, starts the watch of each request still waiting after that long: a request pays
a dict insert and delete, not a timer or a task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

WATCH_AFTER_SECONDS = 0.1

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class DisconnectWatcher:
    """Starts the :class:`Watch` of every request still waiting after ``after_seconds``. One per app."""

    def __init__(self, after_seconds: float = WATCH_AFTER_SECONDS) -> None:
        self._after = after_seconds
        self._waiting: dict[Watch, float] = {}  # loop time each started waiting; insertion order is age order
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, receive: Receive, task: asyncio.Task[Any]) -> Watch:
        return Watch(self, receive, task)

    def _add(self, watch: Watch) -> None:
        loop = asyncio.get_running_loop()
        self._waiting[watch] = loop.time()
        if self._timer is None:
            self._timer = loop.call_later(self._after, self._tick)

    def _discard(self, watch: Watch) -> None:
        self._waiting.pop(watch, None)

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        waiting = self._waiting
        while waiting:
            watch, since = next(iter(waiting.items()))
            if now - since < self._after:
                self._timer = loop.call_later(since + self._after - now, self._tick)
                return
            del waiting[watch]
            watch.start()
        self._timer = None


class Watch:
    """Cancel ``task`` when ``receive()`` reports a disconnect. Use as ``with watcher.watch(...):``.

    The cancellation it caused ends the block quietly (``fired`` is then True); any other, such as a server
    shutdown, goes through.
    """

    __slots__ = ("_owner", "_receive", "_task", "_watcher", "fired")

    def __init__(self, owner: DisconnectWatcher, receive: Receive, task: asyncio.Task[Any]) -> None:
        self._owner = owner
        self._receive = receive
        self._task = task
        self._watcher: asyncio.Future[None] | None = None
        self.fired = False

    def __enter__(self) -> Watch:
        self._owner._add(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        self._owner._discard(self)
        if self._watcher is not None:
            self._watcher.cancel()
        if self.fired and exc_type is not None and issubclass(exc_type, asyncio.CancelledError):
            self._task.uncancel()  # the client left: its cancellation ends here
            return True
        return False

    def start(self) -> None:
        self._watcher = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.fired = True
                self._task.cancel("client disconnected")
                return
