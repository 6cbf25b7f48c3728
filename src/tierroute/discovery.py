"""Find local OpenAI-compatible servers (Ollama, vLLM, llama.cpp) answering on their usual loopback ports.

``GET /v1/models`` says which models a server has; each server says what it serves elsewhere, in its own
wire format, and that is what a request must fit:

- vLLM: ``max_model_len`` on each ``/v1/models`` entry.
- llama.cpp's ``llama-server``: ``GET /props`` → ``default_generation_settings.n_ctx`` (per slot, i.e. per
  request; ``/v1/models``' ``meta.n_ctx_train`` is what the model was trained on, not what is served),
  ``modalities.vision`` and ``chat_template_caps.supports_tool_calls``; ``GET /slots`` when ``/props`` gives
  no ``n_ctx``.
- Ollama: ``POST /api/show`` → ``capabilities`` (tools, vision, thinking, embedding) and the Modelfile's
  ``num_ctx``; ``GET /api/ps`` → ``context_length`` of a loaded model.
- llama-cpp-python's server reports no context size anywhere; its own default (2048) is assumed. It calls
  a named tool for any model (the arguments constrained by a grammar), so its models get ``tools``.

llama.cpp servers name a model by its file path; it gets a short readable id (:func:`readable_id`) and keeps
the path as the upstream name sent to the server.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from .catalog import LOCAL_CONTEXT_WINDOW
from .types import ModelSpec

PROBE_TIMEOUT_SECONDS = 0.5
# llama-cpp-python's ``--n_ctx`` default: its server reports no context size, so this is the best guess.
LLAMA_CPP_PYTHON_CONTEXT_WINDOW = 2048
# Ollama's smallest default context (4k below 24 GiB of VRAM) for a model whose Modelfile sets no num_ctx and
# that is not loaded (a loaded one reports its own). Larger windows come from OLLAMA_CONTEXT_LENGTH, which
# the API does not show: assuming the smallest refuses a few prompts that would fit rather than letting
# Ollama silently truncate ones that do not.
OLLAMA_DEFAULT_CONTEXT_WINDOW = 4096

# The three servers constrain output to JSON (grammars or guided decoding) for any model they serve.
_SERVER_CAPABILITIES = frozenset({"json"})
_OLLAMA_CAPABILITIES = {"tools": "tools", "vision": "vision", "thinking": "reasoning"}

_PATHLIKE = re.compile(r"^(?:/|\.{1,2}/|~|[A-Za-z]:[\\/])|\.(?:gguf|bin|safetensors|ggml)$", re.IGNORECASE)
_WEIGHT_EXTENSION = re.compile(r"\.(?:gguf|bin|safetensors|ggml)$", re.IGNORECASE)
_SPLIT_SUFFIX = re.compile(r"-\d{5}-of-\d{5}$")
# GGUF quantisation names: Q4_1, Q4_K_M, Q8_0, IQ3_XXS, TQ1_0, Q4_0_4_4, F16 (FP16), BF16, F32, MXFP4.
_QUANT_SUFFIX = re.compile(r"[._-](?:[IT]?Q\d(?:_[A-Z0-9]+)*|B?FP?16|FP?32|MXFP4(?:_MOE)?)$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class LocalModel:
    """One model a local server answers for, with what the server says about it."""

    upstream: str
    context_window: int = LOCAL_CONTEXT_WINDOW
    capabilities: frozenset[str] = _SERVER_CAPABILITIES
    mode: str = "chat"


def readable_id(upstream: str, *, keep_quantisation: bool = False) -> str:
    """A short id for a model a server names by its file path: the file's stem without a GGUF split or
    quantisation suffix, lower-cased (``/m/SmolLM2-135M-Instruct.Q4_1.gguf`` → ``smollm2-135m-instruct``).
    Names that are not paths (``llama3.2:latest``, ``Qwen/Qwen2.5-7B-Instruct``) are kept as they are."""
    if not _PATHLIKE.search(upstream):
        return upstream
    stem = _WEIGHT_EXTENSION.sub("", re.split(r"[\\/]", upstream.rstrip("/\\"))[-1])
    stem = _SPLIT_SUFFIX.sub("", stem)
    short = stem if keep_quantisation else (_QUANT_SUFFIX.sub("", stem) or stem)
    return short.lower() or upstream


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


async def _json(session: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> Any:
    """The decoded JSON answer to one request, or None for anything else (refused, absent, not JSON)."""
    try:
        async with session.request(method, url, json=body) as resp:
            if resp.status != 200:
                return None
            return await resp.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, OSError):
        return None


def _model_entries(data: Any) -> list[dict[str, Any]] | None:
    models = data.get("data") if isinstance(data, dict) else None
    if not isinstance(models, list):
        return None
    return [m for m in models if isinstance(m, dict) and isinstance(m.get("id"), str)]


def _window_from_entry(entry: Mapping[str, Any]) -> int | None:
    for key in ("max_model_len", "context_length", "context_window"):
        window = _positive_int(entry.get(key))
        if window:
            return window
    return None


def _llama_server_window(props: Any, slots: Any) -> int | None:
    if isinstance(props, dict):
        settings = props.get("default_generation_settings")
        for holder in (settings, props):
            if isinstance(holder, dict) and _positive_int(holder.get("n_ctx")):
                return int(holder["n_ctx"])
    if isinstance(slots, list) and slots and isinstance(slots[0], dict):
        return _positive_int(slots[0].get("n_ctx"))
    return None


def _is_llama_server(props: Any) -> bool:
    return isinstance(props, dict) and ("default_generation_settings" in props or "total_slots" in props)


def _ollama_model(entry: Mapping[str, Any], show: Any, loaded_windows: Mapping[str, int]) -> LocalModel:
    name = entry["id"]
    show = show if isinstance(show, dict) else {}
    reported = show.get("capabilities")
    reported = {c for c in reported if isinstance(c, str)} if isinstance(reported, list) else set()
    capabilities = _SERVER_CAPABILITIES | {_OLLAMA_CAPABILITIES[c] for c in reported if c in _OLLAMA_CAPABILITIES}
    mode = "embedding" if "embedding" in reported and "completion" not in reported else "chat"
    window = loaded_windows.get(name) or _modelfile_num_ctx(show.get("parameters"))
    if window is None:
        info = show.get("model_info")
        trained = [v for k, v in info.items() if k.endswith(".context_length")] if isinstance(info, dict) else []
        trained_window = _positive_int(trained[0]) if trained else None
        window = min(trained_window or OLLAMA_DEFAULT_CONTEXT_WINDOW, OLLAMA_DEFAULT_CONTEXT_WINDOW)
    return LocalModel(upstream=name, context_window=window, capabilities=frozenset(capabilities), mode=mode)


def _modelfile_num_ctx(parameters: Any) -> int | None:
    if not isinstance(parameters, str):
        return None
    match = re.search(r"^\s*num_ctx\s+(\d+)\s*$", parameters, re.MULTILINE)
    return int(match.group(1)) if match and int(match.group(1)) > 0 else None


def _loaded_windows(ps: Any) -> dict[str, int]:
    running = ps.get("models") if isinstance(ps, dict) else None
    windows: dict[str, int] = {}
    for model in running if isinstance(running, list) else ():
        if isinstance(model, dict) and _positive_int(model.get("context_length")):
            for key in ("name", "model"):
                if isinstance(model.get(key), str):
                    windows[model[key]] = model["context_length"]
    return windows


async def _describe(session: aiohttp.ClientSession, api_base: str, entries: list[dict[str, Any]]) -> list[LocalModel]:
    """What the server says about each model, asked in the wire format of whichever server it turns out to be."""
    if all(_window_from_entry(e) for e in entries):  # vLLM (and anything else that says so on /v1/models)
        return [LocalModel(upstream=e["id"], context_window=_window_from_entry(e) or LOCAL_CONTEXT_WINDOW)
                for e in entries]
    root = api_base.rstrip("/").removesuffix("/v1")
    props, ollama_version = await asyncio.gather(_json(session, "GET", f"{root}/props"),
                                                 _json(session, "GET", f"{root}/api/version"))
    if _is_llama_server(props):
        slots = None if _llama_server_window(props, None) else await _json(session, "GET", f"{root}/slots")
        window = _llama_server_window(props, slots)
        return [LocalModel(upstream=e["id"], context_window=window or _served_window(e) or _trained_window(e),
                           capabilities=_llama_server_capabilities(props)) for e in entries]
    if isinstance(ollama_version, dict) and "version" in ollama_version:
        shows = await asyncio.gather(*(_json(session, "POST", f"{root}/api/show", {"model": e["id"]}) for e in entries))
        loaded = _loaded_windows(await _json(session, "GET", f"{root}/api/ps"))
        return [_ollama_model(e, show, loaded) for e, show in zip(entries, shows)]
    return [LocalModel(upstream=e["id"], context_window=_window_from_entry(e) or _unreported_window(e),
                       capabilities=_SERVER_CAPABILITIES | ({"tools"} if _is_llama_cpp_python(e) else set()))
            for e in entries]


def _llama_server_capabilities(props: Mapping[str, Any]) -> frozenset[str]:
    modalities, caps = props.get("modalities"), props.get("chat_template_caps")
    vision = isinstance(modalities, dict) and modalities.get("vision") is True
    # Tool calls need a template that renders them (``--jinja``); older builds do not say, so no tools.
    tools = isinstance(caps, dict) and (caps.get("supports_tool_calls") is True or caps.get("supports_tools") is True)
    return _SERVER_CAPABILITIES | {name for name, has in (("vision", vision), ("tools", tools)) if has}


def _served_window(entry: Mapping[str, Any]) -> int | None:
    meta = entry.get("meta")
    return _window_from_entry(entry) or (_positive_int(meta.get("n_ctx")) if isinstance(meta, dict) else None)


def _trained_window(entry: Mapping[str, Any]) -> int:
    meta = entry.get("meta")
    trained = _positive_int(meta.get("n_ctx_train")) if isinstance(meta, dict) else None
    return trained or LOCAL_CONTEXT_WINDOW


def _unreported_window(entry: Mapping[str, Any]) -> int:
    return LLAMA_CPP_PYTHON_CONTEXT_WINDOW if _is_llama_cpp_python(entry) else _trained_window(entry)


def _is_llama_cpp_python(entry: Mapping[str, Any]) -> bool:
    # Its entries are exactly {id, object, owned_by: "me", permissions: []}.
    return entry.get("owned_by") == "me" and "permissions" in entry


async def _probe(session: aiohttp.ClientSession, api_base: str) -> list[LocalModel] | None:
    entries = _model_entries(await _json(session, "GET", f"{api_base}/models"))
    if not entries:
        return None
    return await _describe(session, api_base, entries)


async def probe_local_servers(servers: Mapping[str, str]) -> dict[str, list[LocalModel]]:
    """``{name: [models]}`` for every server in ``servers`` that answers ``GET /models`` with at least one."""
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        names = list(servers)
        results = await asyncio.gather(*(_probe(session, servers[n]) for n in names))
    return {name: models for name, models in zip(names, results) if models}


def _ids(models: Sequence[LocalModel]) -> list[str]:
    """Readable ids, unique within one server: where two files shorten alike (two quantisations of one
    model) each keeps its quantisation, and where that is not enough, its full name."""
    short = [readable_id(m.upstream) for m in models]
    longer = [readable_id(m.upstream, keep_quantisation=True) for m in models]
    return [s if short.count(s) == 1 else (q if longer.count(q) == 1 else m.upstream)
            for s, q, m in zip(short, longer, models)]


def local_model_specs(found: Mapping[str, Sequence[LocalModel]]) -> list[ModelSpec]:
    """Catalog entries for discovered local models: free, in the ``general`` tier, named ``server/model``."""
    specs = []
    for server, models in found.items():
        for model, short in zip(models, _ids(models)):
            specs.append(ModelSpec(
                id=f"{server}/{short}", provider=server, upstream=model.upstream,
                context_window=model.context_window, max_output_tokens=model.context_window,
                input_price=0.0, output_price=0.0, capabilities=model.capabilities,
                tier="general" if model.mode == "chat" else None, mode=model.mode,
                source=f"discovered on {server}", as_of=None))
    return specs
