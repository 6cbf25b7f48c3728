"""Clients that abuse the connection itself, over raw sockets against a real ``tierroute serve`` process.

Issue 15 items 11 (huge headers) and 15 (idle connections, slowloris, too many connections). The limits are
``server:`` settings (docs/security.md); these tests set small ones so they run in seconds.
"""

from __future__ import annotations

import socket
import time

import orjson
import pytest

from .processes import serve, wait_for, write_config

CHAT = orjson.dumps({"model": "cheap", "messages": [{"role": "user", "content": "hi"}]})


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def request(port: int, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send one raw request; return (status, body) of the answer, the connection closed after."""
    with connect(port) as s:
        s.sendall(head + body)
        return read_response(s)


def read_response(s: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = [line.lower() for line in head.split(b"\r\n")]
    if b"transfer-encoding: chunked" in lines:  # uvicorn's choice when the app sets no content-length
        while not rest.endswith(b"0\r\n\r\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        return int(head.split(b" ")[1]), rest
    length = next((int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length:")), 0)
    while len(rest) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    return int(head.split(b" ")[1]), rest[:length]


def chat_head(extra: bytes = b"", length: int = len(CHAT)) -> bytes:
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n" % length + extra + b"\r\n")


def health_seconds(port: int) -> float:
    start = time.perf_counter()
    status, _ = request(port, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nconnection: close\r\n\r\n")
    assert status == 200
    return time.perf_counter() - start


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """Resident memory now (VmRSS) or at its peak so far (VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def closed_by_server(s: socket.socket) -> bool:
    try:
        return s.recv(65536) == b"" or True  # any answer (a 408) is followed by the close
    except (ConnectionResetError, TimeoutError):
        return False


@pytest.fixture
def served(tmp_path, fake_upstream):
    server = {"max_header_bytes": 32768, "max_headers": 100, "header_timeout_seconds": 1.0,
              "keep_alive_seconds": 1, "max_connections": 40}
    with serve(write_config(tmp_path, fake_upstream.url, server=server)) as running:
        yield running


# -- item 11: request headers are bounded ------------------------------------------------------------------
def test_headers_over_the_byte_limit_get_431(served):
    status, body = request(served.port, chat_head(b"x-big: " + b"a" * 40_000 + b"\r\n"), CHAT)
    assert status == 431 and b"exceed the limit of 32768 bytes" in body
    assert request(served.port, chat_head(), CHAT)[0] == 200


def test_too_many_headers_get_431(served):
    many = b"".join(b"x-h%d: v\r\n" % i for i in range(150))
    status, body = request(served.port, chat_head(many), CHAT)
    assert status == 431 and b"more than 100 request headers" in body


def test_legitimate_large_headers_and_bodies_pass(served, fake_upstream):
    # 20 KB of headers (big cookies, long tokens) and a 1 MB body sent in the same write as the headers
    big_body = orjson.dumps({"model": "cheap", "messages": [{"role": "user", "content": "x " * 200_000}]})
    status, body = request(served.port, chat_head(b"cookie: " + b"c" * 20_000 + b"\r\n", len(big_body)), big_body)
    assert status == 200, body
    assert len(fake_upstream.requests[-1]["messages"][0]["content"]) == 400_000


def test_a_16_mb_header_is_cut_off_early_and_health_stays_fast(served):
    before = rss_kib(served.proc.pid)
    sent = 0
    with connect(served.port) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nx-big: ")
        try:
            while sent < 16 * 1024 * 1024:
                s.sendall(b"a" * 65536)
                sent += 65536
        except (BrokenPipeError, ConnectionResetError):
            pass
        # the server refused long before the 16 MB were out (socket buffers hold a few MB at most)
        assert sent < 8 * 1024 * 1024
    assert health_seconds(served.port) < 1.0  # seconds-long stalls before the fix; generous on a busy machine
    assert rss_kib(served.proc.pid, "VmHWM") - before < 32 * 1024


# -- item 15: idle connections and slow clients are closed; connections are capped -------------------------
def test_idle_connections_are_closed_after_the_header_timeout(served):
    sockets = [connect(served.port) for _ in range(30)]
    try:
        time.sleep(2.5)  # header_timeout_seconds is 1
        for s in sockets:
            s.settimeout(5)
            assert s.recv(1) == b""  # the server closed it
    finally:
        for s in sockets:
            s.close()
    assert health_seconds(served.port) < 1.0


def test_slowloris_headers_get_408(served):
    with connect(served.port) as s:
        start = time.monotonic()
        s.sendall(b"GET /health HTTP/1.1\r\n")
        try:
            for _ in range(20):  # a header byte every 0.2 s would take 4 s; the limit is 1 s for the whole head
                time.sleep(0.2)
                s.sendall(b"x")
        except (BrokenPipeError, ConnectionResetError):
            pass
        s.settimeout(5)
        try:
            status, body = read_response(s)
            assert status == 408 and b"not received within 1 s" in body
        except ConnectionResetError:
            pass  # the close raced our last write; what matters is that the server hung up, and when
        assert time.monotonic() - start < 3.5


def test_kept_alive_idle_connections_are_closed(served):
    with connect(served.port) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_response(s)[0] == 200
        s.settimeout(5)
        start = time.monotonic()
        assert s.recv(1) == b""
        assert time.monotonic() - start < 4  # keep_alive_seconds is 1


def test_connections_over_the_cap_get_503_and_service_resumes(served):
    held = [connect(served.port) for _ in range(40)]
    try:
        time.sleep(0.2)
        with connect(served.port) as extra:
            extra.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            status, body = read_response(extra)
        assert status == 503 and b"maximum of 40 connections" in body
    finally:
        for s in held:
            s.close()
    wait_for(lambda: _health_ok(served.port), 5, "the gateway to answer again")


def _health_ok(port: int) -> bool:
    try:
        return health_seconds(port) < 5
    except (AssertionError, OSError):
        return False


# -- item 14: a huge body costs memory in proportion and does not stall other requests ----------------------
def test_huge_bodies_with_runaway_detection_stay_proportional_and_health_answers(tmp_path, fake_upstream):
    import threading

    config = write_config(tmp_path, fake_upstream.url, limits={"runaway": {"enabled": True}},
                          models=[{"id": "cheap", "provider": "local", "upstream": "fake-cheap",
                                   "context_window": 10_000_000, "input_price": 0.15, "output_price": 0.6}])
    text = ("The quick brown fox 12345 jumps over the lazy dog at 10:45. " * 250_000)[:15_000_000]
    body = orjson.dumps({"model": "cheap", "messages": [{"role": "user", "content": text}]})
    with serve(config) as served:
        assert request(served.port, chat_head(), CHAT)[0] == 200  # warm: imports, ledger, upstream pool
        before = rss_kib(served.proc.pid)
        statuses: list[int] = []

        def send_one() -> None:
            statuses.append(request(served.port, chat_head(length=len(body)), body)[0])

        senders = [threading.Thread(target=send_one) for _ in range(4)]
        for t in senders:
            t.start()
        slowest = 0.0
        while any(t.is_alive() for t in senders):
            slowest = max(slowest, health_seconds(served.port))
            time.sleep(0.05)
        for t in senders:
            t.join()
        grown = (rss_kib(served.proc.pid, "VmHWM") - before) * 1024
    assert statuses == [200] * 4
    # 4 bodies in flight at once: raw bytes, decoded text and the upstream copy each, not ~20x each
    assert grown < 4 * 8 * len(body), f"grew {grown / 1e6:.0f} MB"
    assert slowest < 2.0, f"/health took {slowest:.2f} s"  # 2.5 s for 8 bodies before; generous for a busy machine


def test_serve_raises_a_low_open_files_limit_to_fit_max_connections(tmp_path, fake_upstream):
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 2 * 2048 + 1024:
        pytest.skip(f"the hard open-files limit ({hard}) is below what the default max_connections needs")

    def low_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    with serve(write_config(tmp_path, fake_upstream.url), preexec_fn=low_soft_limit) as served:
        with open(f"/proc/{served.proc.pid}/limits") as f:
            soft = next(int(line.split()[3]) for line in f if line.startswith("Max open files"))
    assert soft == 2 * 2048 + 1024  # clients, as many upstream connections, and files
