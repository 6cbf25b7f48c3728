"""Several fake upstreams serving one model, a gateway config over them, and a closed-loop load driver.

Shared by the fault-injection tests (``tests/reliability``) and the chaos benchmark (``bench/bench_chaos.py``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import openai

from tierroute.config import Settings, parse_settings

from .openai_upstream import FakeOpenAI

MODEL = "m"


def deployment_id(index: int) -> str:
    return f"p{index}/fake-m"


def chaos_settings(urls: list[str], ledger_path: str, *, reliability: dict[str, Any] | None = None,
                   connect_timeout_seconds: float = 1.0, first_token_timeout_seconds: float = 0.5,
                   first_byte_timeout_seconds: float = 3.0, stream_idle_timeout_seconds: float = 3.0,
                   total_timeout_seconds: float = 3.0) -> Settings:
    """Model ``m`` deployed on every upstream (providers ``p0``, ``p1`` ...), with short timeouts."""
    providers = {f"p{i}": {"kind": "openai", "api_base": f"{url}/v1", "api_key": "sk-upstream",
                           "connect_timeout_seconds": connect_timeout_seconds,
                           "first_token_timeout_seconds": first_token_timeout_seconds,
                           "first_byte_timeout_seconds": first_byte_timeout_seconds,
                           "stream_idle_timeout_seconds": stream_idle_timeout_seconds,
                           "total_timeout_seconds": total_timeout_seconds}
                 for i, url in enumerate(urls)}
    raw: dict[str, Any] = {
        "providers": providers,
        "models": [{"id": MODEL, "provider": "p0", "upstream": "fake-m", "context_window": 32000,
                    "input_price": 1.0, "output_price": 2.0, "tier": "general", "quality": 0.8}],
        "deployments": [{"model": MODEL, "provider": f"p{i}"} for i in range(1, len(urls))],
        "tiers": [{"name": "general"}],
        "ledger": {"path": ledger_path, "flush_interval_seconds": 0.05},
        "reliability": reliability or {},
    }
    return parse_settings(raw, source="chaos", environ={})


def start_upstreams(n: int) -> list[FakeOpenAI]:
    return [FakeOpenAI().start() for _ in range(n)]


@dataclass(frozen=True, slots=True)
class Outcome:
    sent: float  # time.monotonic()
    done: float
    deployment: str | None
    attempts: int
    request_id: str | None
    error: str | None = None

    @property
    def seconds(self) -> float:
        return self.done - self.sent


async def one_request(client: openai.AsyncOpenAI, *, stream: bool, extra_body: dict[str, Any] | None = None) -> Outcome:
    sent = time.monotonic()
    messages = [{"role": "user", "content": "hi"}]
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=messages, stream=stream, extra_body=extra_body)
        headers = raw.headers
        parsed = raw.parse()  # the legacy raw response parses synchronously
        if stream:
            text = "".join([c.choices[0].delta.content or "" async for c in parsed if c.choices])
        else:
            text = parsed.choices[0].message.content or ""
        if not text:
            raise RuntimeError("empty answer")
        return Outcome(sent, time.monotonic(), headers.get("x-tierroute-deployment"),
                       int(headers.get("x-tierroute-attempts", 1)), headers.get("x-tierroute-request-id"))
    except Exception as exc:  # noqa: BLE001 - every client-visible failure is an outcome
        return Outcome(sent, time.monotonic(), None, 0, None, error=f"{type(exc).__name__}: {exc}"[:300])


async def drive(client: openai.AsyncOpenAI, *, concurrency: int, seconds: float, stream: bool = False,
                until: float | None = None, extra_body: dict[str, Any] | None = None) -> list[Outcome]:
    """``concurrency`` closed-loop workers sending requests for ``seconds``."""
    stop = (until if until is not None else time.monotonic() + seconds)
    outcomes: list[Outcome] = []

    async def worker() -> None:
        while time.monotonic() < stop:
            outcomes.append(await one_request(client, stream=stream, extra_body=extra_body))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes


def share(outcomes: list[Outcome], deployment: str, start: float, end: float) -> float:
    window = [o for o in outcomes if start <= o.sent < end and o.error is None]
    return sum(o.deployment == deployment for o in window) / max(1, len(window))
