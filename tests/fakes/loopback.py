"""Run a fake upstream's aiohttp app on a free loopback port, from a daemon thread with its own event loop."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable

from aiohttp import web


def serve_in_thread(build: Callable[[], web.Application], name: str) -> str:
    """Start ``build()``'s app on 127.0.0.1 in a background thread; return its base URL once it accepts."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    ready = threading.Event()

    def run() -> None:
        loop = asyncio.new_event_loop()
        runner = web.AppRunner(build(), access_log=None)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.SockSite(runner, sock).start())
        ready.set()
        loop.run_forever()

    threading.Thread(target=run, daemon=True, name=name).start()
    if not ready.wait(10):
        raise RuntimeError(f"{name}: the fake server did not start within 10 s")
    return url
