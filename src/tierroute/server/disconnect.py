"""Stop the work done for a client that has hung up.

Under uvicorn a write to a gone client is dropped silently, so a handler relaying an upstream answer never
learns that nobody is listening, and the model generates to the end on the caller's bill. The ASGI way to
learn it is a ``receive()`` that returns ``http.disconnect``; :class:`DisconnectWatch` waits for that in a
task of its own and cancels the handler's task when it comes.

Starting that task costs about as much as the rest of a fast request's routing, and a request answered
within :data:`WATCH_AFTER_SECONDS` gains nothing from it (the upstream is done by the time a disconnect
would be seen), so the watch starts only once a request has been waiting that long.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

WATCH_AFTER_SECONDS = 0.1


class DisconnectWatch:
    """Cancel ``task`` when ``receive()`` reports a disconnect. Use as ``with DisconnectWatch(...) as watch``.

    After the block, ``watch.fired`` says whether a cancellation came from it (so the handler can swallow
    exactly that one and let any other, such as a server shutdown, through).
    """

    __slots__ = ("_receive", "_task", "_timer", "_watcher", "fired")

    def __init__(self, receive: Callable[[], Awaitable[MutableMapping[str, Any]]], task: asyncio.Task[Any]) -> None:
        self._receive = receive
        self._task = task
        self._timer: asyncio.TimerHandle | None = None
        self._watcher: asyncio.Future[None] | None = None
        self.fired = False

    def __enter__(self) -> DisconnectWatch:
        self._timer = asyncio.get_running_loop().call_later(WATCH_AFTER_SECONDS, self._start)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._watcher is not None:
            self._watcher.cancel()

    def _start(self) -> None:
        self._timer = None
        self._watcher = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.fired = True
                self._task.cancel("client disconnected")
                return
