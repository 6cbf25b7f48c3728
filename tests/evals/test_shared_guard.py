"""Two routers (two replicas) sharing Redis pool their judgments and act together: what one replica's
samples establish moves the route on the other, and the other's samples bring it back."""

from __future__ import annotations

import asyncio
import time

from tierroute.router import Router

from .conftest import CHAT, MATH, eval_settings


def body(prompt: str) -> dict:
    return {"model": "auto", "messages": [{"role": "user", "content": prompt}]}


async def answered_by(router: Router, prompt: str) -> str:
    routed = await router.acompletion(body(prompt))
    await router.evals.drain()
    return routed.headers["x-tierroute-model"]


async def until(router: Router, prompt: str, model: str, *, most: int) -> int:
    for n in range(1, most + 1):
        if await answered_by(router, prompt) == model:
            return n
    raise AssertionError(f"{prompt!r} was not answered by {model} within {most} requests")


async def adopted(router: Router, prompt: str, model: str) -> None:
    """The other replica reads the shared state every guard.refresh_seconds (0.1 s here)."""
    deadline = time.monotonic() + 10
    while (await router.plan(body(prompt))).decision.chosen.model.id != model:
        assert time.monotonic() < deadline, f"the other replica did not adopt {model} for {prompt!r}"
        await asyncio.sleep(0.05)


def test_two_replicas_share_the_guard_through_redis(quality, tmp_path, redis_url, redis_prefix):
    limits = {"state": {"backend": "redis", "url": redis_url, "prefix": redis_prefix}}
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()

    async def run() -> None:
        async with Router(eval_settings(quality.url, a_dir, limits=limits)) as a, \
                Router(eval_settings(quality.url, b_dir, limits=limits)) as b:
            assert await answered_by(b, MATH) == "cheap"  # starts b's refresh task
            quality.degraded_words.add("math")
            await until(a, MATH, "strong", most=40)  # only replica a sees the losses
            await adopted(b, MATH, "strong")
            assert (await b.plan(body(CHAT))).decision.chosen.model.id == "cheap"
            routed = await b.acompletion(body(MATH))
            assert "quality guard: intent:math/cheap shifted to strong" in routed.headers["x-tierroute-reason"]

            quality.degraded_words.clear()
            await b.evals.drain()
            await until(b, MATH, "cheap", most=80)  # only replica b gathers the evidence of recovery
            await adopted(a, MATH, "cheap")
            states = await a.evals.store.states()
            assert states["intent:math/cheap"]["phase"] == "holding"
            assert states["intent:math/cheap"]["generation"] == 2

    asyncio.run(run())
