"""External services for backend contract tests: Redis and PostgreSQL on loopback.

Tests that need one are skipped, with a message naming what is missing, when it is unreachable; with
``TIERROUTE_REQUIRE_SERVICES=1`` (CI) a missing service fails them instead. Addresses come from
``TIERROUTE_TEST_REDIS_URL`` and ``TIERROUTE_TEST_POSTGRES_DSN``. Each test gets its own Redis key prefix
or PostgreSQL schema, so concurrent runs never collide.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

REDIS_URL = os.environ.get("TIERROUTE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_DSN = os.environ.get("TIERROUTE_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def _required() -> bool:
    return os.environ.get("TIERROUTE_REQUIRE_SERVICES") == "1"


def _missing(what: str, why: str) -> None:
    message = f"{what} not available ({why}); set {'TIERROUTE_TEST_REDIS_URL' if 'Redis' in what else 'TIERROUTE_TEST_POSTGRES_DSN'}"
    if _required():
        pytest.fail(f"{message} - required because TIERROUTE_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)


def _reachable(host: str, port: int) -> str | None:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return None
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or exc}"


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def redis_url() -> str:
    parsed = urlparse(REDIS_URL)
    why = _reachable(parsed.hostname or "127.0.0.1", parsed.port or 6379)
    if why is not None:
        _missing(f"Redis at {REDIS_URL}", why)
    try:
        import redis
    except ImportError:
        _missing("Redis client (pip install tierroute[redis])", "redis package not installed")
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        _missing(f"Redis at {REDIS_URL}", str(exc))
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A fresh key prefix; its keys are deleted afterwards."""
    import redis

    prefix = unique("trtest")
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{{{prefix}}}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def postgres_dsn() -> Iterator[str]:
    """A DSN whose search_path is a fresh schema, dropped afterwards."""
    try:
        import psycopg
    except ImportError:
        _missing("PostgreSQL client (pip install tierroute[postgres])", "psycopg not installed")
    parsed = urlparse(POSTGRES_DSN)
    why = _reachable(parsed.hostname or "127.0.0.1", parsed.port or 5432)
    if why is not None:
        _missing(f"PostgreSQL at {POSTGRES_DSN}", why)
    schema = unique("trtest")
    try:
        with psycopg.connect(POSTGRES_DSN, autocommit=True, connect_timeout=2) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.Error as exc:
        _missing(f"PostgreSQL at {POSTGRES_DSN}", str(exc).strip())
    separator = "&" if "?" in POSTGRES_DSN else "?"
    yield f"{POSTGRES_DSN}{separator}options=-csearch_path%3D{schema}"
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
