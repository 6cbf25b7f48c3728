"""Size limits and backpressure of both HTTP clients over real loopback HTTP, memory measured with tracemalloc;
and a bomb through a real gateway counts against its deployment."""

from __future__ import annotations

import asyncio
import gzip
import tracemalloc

import openai
import pytest
from aiohttp import web

from tierroute import _exceptions as exc
from tierroute.config import parse_settings
from tierroute.providers.client import ResponseTooLarge

from ..fakes.hostile_upstream import gzip_bomb
from .conftest import hostile_settings, ledger_rows
from .test_http_clients import make_client, mapped, serve  # noqa: F401 - fixtures shared with the client contract

MB = 1024 * 1024


def sized(size: int, *, status: int = 200) -> web.Response:
    return web.Response(body=b"x" * size, status=status)


async def test_a_body_over_the_limit_is_refused_with_its_prefix(serve, make_client) -> None:
    async def big(request: web.Request) -> web.StreamResponse:
        return sized(3 * MB)

    upstream = await serve(big)
    client = make_client(upstream.url, max_response_bytes=MB)
    resp = await client.post(f"{upstream.url}/x", b"{}", {})
    try:
        with pytest.raises(ResponseTooLarge) as caught:
            await resp.read()
    finally:
        resp.release()
    assert caught.value.prefix == b"x" * MB
    error = mapped(caught.value)
    assert isinstance(error, exc.UpstreamUnavailable) and "response too large" in error.message
    resp = await client.post(f"{upstream.url}/x", b"{}", {})  # a smaller explicit limit for an error body
    try:
        with pytest.raises(ResponseTooLarge):
            await resp.read(4096)
    finally:
        resp.release()


async def test_a_body_at_the_limit_passes_and_gzip_is_still_decoded(serve, make_client) -> None:
    async def exact(request: web.Request) -> web.StreamResponse:
        if request.path == "/gz":
            return web.Response(body=gzip.compress(b"y" * MB), headers={"Content-Encoding": "gzip"})
        return sized(MB)

    upstream = await serve(exact)
    client = make_client(upstream.url, max_response_bytes=MB)
    for path, byte in (("/x", b"x"), ("/gz", b"y")):
        resp = await client.post(f"{upstream.url}{path}", b"{}", {})
        try:
            assert bytes(await resp.read()) == byte * MB
        finally:
            resp.release()


async def test_a_decompression_bomb_stops_at_the_limit(serve, make_client) -> None:
    bomb = gzip_bomb(64 * MB)  # 64 KB that inflate to 64 MB

    async def bombing(request: web.Request) -> web.StreamResponse:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})

    upstream = await serve(bombing)
    client = make_client(upstream.url, max_response_bytes=MB)
    tracemalloc.start()
    try:
        resp = await client.post(f"{upstream.url}/x", b"{}", {})
        try:
            with pytest.raises(ResponseTooLarge) as caught:
                await resp.read()
        finally:
            resp.release()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 12 * MB, f"inflating held {peak / MB:.1f} MB"
    assert "too large" in mapped(caught.value).message


async def test_a_line_over_the_event_limit_is_refused(serve, make_client) -> None:
    async def long_line(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b"data: short\n")
        for _ in range(4):
            await resp.write(b"z" * MB)
        await resp.write(b"\n")
        await resp.write_eof()
        return resp

    upstream = await serve(long_line)
    client = make_client(upstream.url, max_event_bytes=MB)
    resp = await client.post(f"{upstream.url}/x", b"{}", {})
    try:
        assert await resp.readline() == b"data: short\n"
        with pytest.raises(ResponseTooLarge):
            await resp.readline()
    finally:
        resp.release()


async def test_a_stream_is_not_read_faster_than_it_is_consumed(serve, make_client) -> None:
    """The upstream writes as fast as it can; the reader takes one line, then stalls. What the client holds
    stays at a few hundred KB, and the upstream is held back by TCP (its writes wait)."""
    sent = [0]
    line = b"data: " + b"w" * 1000 + b"\n"

    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        try:
            while True:
                await resp.write(line * 64)
                sent[0] += len(line) * 64
        except (ConnectionResetError, RuntimeError):
            pass
        return resp

    upstream = await serve(endless)
    client = make_client(upstream.url)
    tracemalloc.start()
    try:
        resp = await client.post(f"{upstream.url}/x", b"{}", {})
        try:
            assert await resp.readline() == line
            await asyncio.sleep(1.5)
            _, peak = tracemalloc.get_traced_memory()
            held_back_at = sent[0]
            await asyncio.sleep(0.5)
            assert sent[0] - held_back_at < 2 * MB, "the upstream keeps writing into a reader that stopped"
            for _ in range(2000):  # and the stream goes on once the reader reads again
                assert await resp.readline() == line
        finally:
            resp.release()
    finally:
        tracemalloc.stop()
    # The loopback socket buffers hold a few MB more; those are the kernel's, not the gateway's heap.
    assert peak < 4 * MB, f"the client buffered {peak / MB:.1f} MB for a reader that stopped"


@pytest.mark.parametrize("field", ["max_response_bytes", "max_error_bytes", "max_event_bytes"])
def test_limits_are_configured_per_provider_and_nonsense_is_refused_by_name(field) -> None:
    settings = parse_settings({"providers": {"p": {"api_base": "http://127.0.0.1:1/v1", field: 5 * MB}}}, environ={})
    assert getattr(settings.providers["p"], field) == 5 * MB
    with pytest.raises(exc.ConfigError, match=f"providers.p.{field}"):
        parse_settings({"providers": {"p": {"api_base": "http://127.0.0.1:1/v1", field: 10}}}, environ={})


@pytest.mark.parametrize("model", ["o-fast", "o-aio", "a-fast", "a-aio"])
async def test_a_bomb_through_the_gateway_counts_against_the_deployment(serve_settings, hostile, tmp_path, model):
    gw = serve_settings(hostile_settings(hostile.url, tmp_path, provider_options={"max_response_bytes": 4 * MB}))
    async with openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0, timeout=20) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "scenario: gzip-bomb"}])
    assert caught.value.status_code == 503 and "response too large" in caught.value.message
    health = gw.router.dispatcher.health.snapshot()[f"p-{model}/h"]
    assert health["consecutive_failures"] == 1 and health["window_failures"] == 1
    (entries,) = ledger_rows(gw).values()
    assert entries[-1].error_kind == "unavailable" and entries[-1].http_status == 503
