"""The HTTP client contract (``providers/client.py``), run against both implementations over real loopback HTTP.

Failures are checked through ``errors.from_exception``, the one place that maps them, so both clients must
end up as the same exception of the tree with the same wording.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tierroute import _exceptions as exc
from tierroute.config import ProviderSettings
from tierroute.providers import errors
from tierroute.providers.client import HTTPClient, open_client, proxy_applies

KINDS = ["fast", "aiohttp"]
SSE_EVENTS = [b'data: {"n": 1}\n', b"\n", b'data: {"n": 2}\n', b"\n", b"data: [DONE]\n", b"\n"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Upstream:
    """An aiohttp.web server on loopback that counts the connections it accepted."""

    def __init__(self) -> None:
        self.peers: set[tuple[str, int]] = set()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, handler: Handler, *, ssl_context: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> Upstream:
        async def counted(request: web.Request) -> web.StreamResponse:
            self.peers.add(request.transport.get_extra_info("peername")[:2])  # type: ignore[union-attr]
            return await handler(request)

        app = web.Application()
        app.router.add_post("/{tail:.*}", counted)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"{'https' if ssl_context else 'http'}://{host}:{port}"
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Upstream]]]:
    servers: list[Upstream] = []

    async def start(handler: Handler, **kwargs: Any) -> Upstream:
        servers.append(await Upstream().start(handler, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture(params=KINDS)
async def make_client(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., HTTPClient]]:
    clients: list[HTTPClient] = []

    def make(api_base: str, *, ssl_context: ssl.SSLContext | None = None, **settings: Any) -> HTTPClient:
        client = open_client(ProviderSettings(api_base=api_base, http_client=request.param, **settings),
                             ssl_context=ssl_context)
        clients.append(client)
        return client

    make.kind = request.param  # type: ignore[attr-defined]
    yield make
    for client in clients:
        await client.aclose()


async def post(client: HTTPClient, url: str, body: bytes = b"{}") -> tuple[int, Mapping[str, str], bytes]:
    resp = await client.post(url, body, {"Content-Type": "application/json"})
    try:
        return resp.status, resp.headers, await resp.read()
    finally:
        resp.release()


def mapped(error: BaseException, phase: str = "request") -> exc.UpstreamError:
    return errors.from_exception(error, provider="p", deployment="d", phase=phase)


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.Response(body=b"echo:" + body, headers={"X-Seen-Auth": request.headers.get("Authorization", "")})


async def test_content_length_body_status_and_headers(serve, make_client) -> None:
    upstream = await serve(echo)
    client = make_client(upstream.url)
    resp = await client.post(f"{upstream.url}/v1/chat", b'{"a": 1}', {"Authorization": "Bearer k"})
    try:
        assert resp.status == 200
        assert resp.headers["x-seen-auth"] == "Bearer k"
        assert resp.headers.get("content-length") == str(len(b'echo:{"a": 1}'))
        assert await resp.read() == b'echo:{"a": 1}'
    finally:
        resp.release()


async def test_error_status_is_returned_not_raised(serve, make_client) -> None:
    async def limited(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "slow down"}}, status=429, headers={"Retry-After": "3"})

    upstream = await serve(limited)
    status, headers, body = await post(make_client(upstream.url), f"{upstream.url}/x")
    error = errors.from_status(status, body, headers, provider="p", deployment="d")
    assert headers["Retry-After"] == headers["retry-after"] == "3"  # case-insensitive either way
    assert isinstance(error, exc.UpstreamRateLimited) and error.retry_after_seconds == 3.0


async def test_chunked_body(serve, make_client) -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for part in (b"one,", b"two,", b"three"):
            await resp.write(part)
        await resp.write_eof()
        return resp

    upstream = await serve(chunked)
    status, headers, body = await post(make_client(upstream.url), f"{upstream.url}/x")
    assert (status, body) == (200, b"one,two,three")
    assert headers["Transfer-Encoding"] == "chunked"


async def sse(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for event in SSE_EVENTS:
        await resp.write(event)
        await asyncio.sleep(0.005)  # separate TCP segments, so lines really arrive one by one
    await resp.write_eof()
    return resp


async def test_sse_is_read_line_by_line_then_empty_at_the_end(serve, make_client) -> None:
    upstream = await serve(sse)
    client = make_client(upstream.url)
    resp = await client.post(f"{upstream.url}/stream", b"{}", {})
    try:
        lines = [await resp.readline() for _ in SSE_EVENTS]
        assert lines == SSE_EVENTS
        assert await resp.readline() == b""
    finally:
        resp.release()
    status, _, _ = await post(client, f"{upstream.url}/x")  # the connection went back to the pool
    assert status == 200 and len(upstream.peers) == 1


async def test_keep_alive_connections_are_reused(serve, make_client) -> None:
    upstream = await serve(echo)
    client = make_client(upstream.url)
    for _ in range(20):
        assert (await post(client, f"{upstream.url}/x"))[0] == 200
    assert len(upstream.peers) == 1
    results = await asyncio.gather(*(post(client, f"{upstream.url}/x") for _ in range(30)))
    assert all(status == 200 for status, _, _ in results)
    opened = len(upstream.peers)
    await asyncio.gather(*(post(client, f"{upstream.url}/x") for _ in range(30)))
    assert len(upstream.peers) == opened <= 30  # the second burst found the first burst's connections idle


async def test_the_pool_never_opens_more_than_max_connections(serve, make_client) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.01)
        return web.Response(body=b"ok")

    upstream = await serve(slow)
    client = make_client(upstream.url, max_connections=3)
    results = await asyncio.gather(*(post(client, f"{upstream.url}/x") for _ in range(20)))
    assert [body for _, _, body in results] == [b"ok"] * 20
    assert len(upstream.peers) <= 3


async def test_a_connection_the_server_closed_while_idle_is_not_reused(serve, make_client) -> None:
    async def close_after(request: web.Request) -> web.Response:
        asyncio.get_running_loop().call_later(0.05, request.transport.close)  # type: ignore[union-attr]
        return web.Response(body=b"ok")

    upstream = await serve(close_after)
    client = make_client(upstream.url)
    for _ in range(3):
        assert (await post(client, f"{upstream.url}/x"))[2] == b"ok"
        await asyncio.sleep(0.2)
    assert len(upstream.peers) == 3


async def test_fast_client_resends_once_when_a_pooled_connection_dies_before_answering() -> None:
    """The race a keep-alive client cannot avoid: the server closes an idle connection just as a request is
    written on it. The request never reached the application, so it is sent again on a fresh connection."""
    accepted: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        answered = 0
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
            await reader.readexactly(length)
            if answered == 1 and len(accepted) == 1:
                writer.close()  # the first connection dies on its second request, without a byte of answer
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            answered += 1

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    client = open_client(ProviderSettings(api_base=url, http_client="fast"))
    try:
        assert (await post(client, f"{url}/x"))[2] == b"ok"
        assert (await post(client, f"{url}/x"))[2] == b"ok"
        assert len(accepted) == 2
    finally:
        await client.aclose()
        server.close()


async def test_connection_refused_maps_to_cannot_connect(make_client) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(Exception) as caught:
        await post(make_client(url), f"{url}/x")
    error = mapped(caught.value)
    assert isinstance(error, exc.UpstreamUnavailable) and "cannot connect" in error.message


async def test_total_timeout_maps_to_upstream_timeout(serve, make_client) -> None:
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(body=b"late")

    upstream = await serve(hang)
    client = make_client(upstream.url, total_timeout_seconds=0.3)
    started = asyncio.get_running_loop().time()
    with pytest.raises(Exception) as caught:
        await post(client, f"{upstream.url}/x")
    assert asyncio.get_running_loop().time() - started < 2
    assert isinstance(mapped(caught.value), exc.UpstreamTimeout)


async def test_a_body_cut_mid_stream_maps_to_cut_off(serve, make_client) -> None:
    async def cut(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(SSE_EVENTS[0])
        await asyncio.sleep(0.05)
        request.transport.close()  # type: ignore[union-attr]
        return resp

    upstream = await serve(cut)
    client = make_client(upstream.url)
    resp = await client.post(f"{upstream.url}/stream", b"{}", {})
    try:
        assert await resp.readline() == SSE_EVENTS[0]
        with pytest.raises(Exception) as caught:
            await resp.readline()
    finally:
        resp.release()
    error = mapped(caught.value, phase="stream")
    assert isinstance(error, exc.UpstreamUnavailable) and "cut off" in error.message


# -- TLS ------------------------------------------------------------------------------------------------
def self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_tls_with_a_custom_ca_and_sni(serve, make_client, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    sni: list[str | None] = []
    server_ctx.sni_callback = lambda sock, name, ctx: sni.append(name)  # type: ignore[assignment,misc]
    upstream = await serve(echo, ssl_context=server_ctx, host="localhost")

    trusting = ssl.create_default_context(cafile=str(cert))
    client = make_client(upstream.url, ssl_context=trusting)
    for _ in range(3):
        assert (await post(client, f"{upstream.url}/x", b"hi"))[2] == b"echo:hi"
    assert sni and sni[0] == "localhost"
    assert len(upstream.peers) == 1  # keep-alive over TLS too

    untrusting = make_client(upstream.url)  # system CAs only: the self-signed certificate is refused
    with pytest.raises(Exception) as caught:
        await post(untrusting, f"{upstream.url}/x")
    error = mapped(caught.value)
    assert isinstance(error, exc.UpstreamUnavailable) and "cannot connect" in error.message


# -- choosing ---------------------------------------------------------------------------------------------
async def test_a_proxy_in_the_environment_selects_aiohttp(monkeypatch: pytest.MonkeyPatch) -> None:
    from tierroute.providers.aiohttp_client import AiohttpClient
    from tierroute.providers.fast_client import FastClient

    for var in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    settings = ProviderSettings(api_base="https://api.example.com/v1")
    assert not proxy_applies(settings.api_base)
    fast = open_client(settings)
    assert isinstance(fast, FastClient)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    proxied = open_client(settings)
    assert isinstance(proxied, AiohttpClient)
    monkeypatch.setenv("NO_PROXY", "api.example.com")
    assert not proxy_applies(settings.api_base)
    await fast.aclose()
    await proxied.aclose()
