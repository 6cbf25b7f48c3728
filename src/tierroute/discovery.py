"""Find local OpenAI-compatible servers (Ollama, vLLM, llama.cpp) answering on their usual loopback ports."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp

from .catalog import LOCAL_CONTEXT_WINDOW
from .types import ModelSpec

PROBE_TIMEOUT_SECONDS = 0.5


async def _probe(session: aiohttp.ClientSession, api_base: str) -> list[dict[str, Any]] | None:
    try:
        async with session.get(f"{api_base}/models") as resp:
            if resp.status != 200:
                return None
            data = await resp.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, OSError):
        return None
    models = data.get("data") if isinstance(data, dict) else None
    return [m for m in models if isinstance(m, dict) and isinstance(m.get("id"), str)] if isinstance(models, list) else None


async def probe_local_servers(servers: Mapping[str, str]) -> dict[str, list[dict[str, Any]]]:
    """``{name: [model entries]}`` for every server in ``servers`` that answers ``GET /models``."""
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        names = list(servers)
        results = await asyncio.gather(*(_probe(session, servers[n]) for n in names))
    return {name: models for name, models in zip(names, results) if models}


def _context_window(entry: Mapping[str, Any]) -> int:
    for key in ("max_model_len", "context_length", "context_window"):
        value = entry.get(key)
        if isinstance(value, int) and value > 0:
            return value
    meta = entry.get("meta")
    if isinstance(meta, dict) and isinstance(meta.get("n_ctx_train"), int):
        return int(meta["n_ctx_train"])
    return LOCAL_CONTEXT_WINDOW


def local_model_specs(found: Mapping[str, list[dict[str, Any]]]) -> list[ModelSpec]:
    """Catalog entries for discovered local models: free, in the ``general`` tier, named ``server/model``."""
    specs = []
    for server, entries in found.items():
        for entry in entries:
            window = _context_window(entry)
            specs.append(ModelSpec(
                id=f"{server}/{entry['id']}", provider=server, upstream=entry["id"], context_window=window,
                max_output_tokens=window, input_price=0.0, output_price=0.0, tier="general",
                source=f"discovered on {server}", as_of=None))
    return specs
