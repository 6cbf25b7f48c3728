"""What a key-less gateway answers: requests from this machine, not from a web page on another site.

Without API keys anyone who can reach the port can spend the operator's money, so ``tierroute serve`` binds
key-less gateways to loopback. That alone does not stop a browser: any page the user visits can POST to
``http://127.0.0.1:4000`` (a ``text/plain`` body needs no CORS preflight), and a DNS-rebinding page can even
read the answer, its requests then carrying the attacker's name in ``Host``. So a key-less gateway answers
only requests whose ``Host`` is a loopback name, whose ``Origin`` (if any) is a loopback page, and whose body
is declared ``application/json`` (which a cross-site page cannot send without a preflight, and the gateway
answers no preflight). Gateways with API keys skip this: the key is the proof of intent.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from .._exceptions import CrossSiteRefused, UnsupportedMediaType

_HINT = "; a gateway without API keys answers only this machine (set server.api_keys to serve others)"


_COMMON = frozenset({b"127.0.0.1", b"localhost", b"[::1]"})


def _loopback_authority(authority: bytes) -> bool:
    """``host[:port]`` names this machine: localhost, 127.0.0.0/8 or [::1]."""
    host, colon, port = authority.rpartition(b":")
    if not colon or not port.isdigit():
        host = authority  # no port (or the last colon is inside an IPv6 literal)
    if host in _COMMON:  # the usual case, decided without lower() or ipaddress (~5 us)
        return True
    host = host.strip().lower()
    if host.startswith(b"[") and host.endswith(b"]"):
        host = host[1:-1]
    if host == b"localhost" or host.endswith(b".localhost"):  # RFC 6761: .localhost never leaves the machine
        return True
    try:  # the rest of 127.0.0.0/8, and ::1 however it is written
        return ipaddress.ip_address(host.decode("ascii")).is_loopback
    except (ValueError, UnicodeDecodeError):
        return False


def check_same_machine(method: str, headers: Iterable[tuple[bytes, bytes]]) -> None:
    """Raise unless the request could only have come from this machine's own programs (see the module doc)."""
    host = origin = content_type = None
    for name, value in headers:
        if name == b"host":
            host = value
        elif name == b"origin":
            origin = value
        elif name == b"content-type":
            content_type = value
    if host is not None and not _loopback_authority(host):
        raise CrossSiteRefused(f"Host {host.decode('latin-1')!r} is not a loopback name{_HINT}")
    if origin is not None:
        scheme, _, authority = origin.partition(b"://")
        if scheme not in (b"http", b"https") or not _loopback_authority(authority):
            raise CrossSiteRefused(f"requests from the web page {origin.decode('latin-1')!r} are refused{_HINT}")
    if method == "POST" and (content_type is None or content_type.split(b";", 1)[0].strip().lower() != b"application/json"):
        got = content_type.decode("latin-1") if content_type is not None else "none"
        raise UnsupportedMediaType(f"send the body as Content-Type: application/json (got {got}){_HINT}")
