"""Local OpenAI-compatible servers are found by asking them for their models, on loopback only; each is then
asked, in its own wire format, what it serves: the context a request must fit, and what the model can do."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tierroute.catalog import Catalog
from tierroute.config import settings_from_environment
from tierroute.discovery import local_model_specs, probe_local_servers, readable_id

from .fakes import local_servers as wire
from .fakes.local_servers import SMOLLM_PATH, FakeLocalServer


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def local_server_process() -> FakeLocalServer:
    return FakeLocalServer().start()


@pytest.fixture
def local(local_server_process: FakeLocalServer) -> Iterator[FakeLocalServer]:
    yield local_server_process
    local_server_process.set({})


async def discover(server: FakeLocalServer, name: str = "llamacpp") -> dict[str, object]:
    found = await probe_local_servers({name: f"{server.url}/v1"})
    return {s.id: s for s in local_model_specs(found)}


async def test_answering_servers_become_free_general_tier_models(fake_upstream):
    found = await probe_local_servers({"vllm": f"{fake_upstream.url}/v1",
                                       "ollama": f"http://127.0.0.1:{closed_port()}/v1"})
    assert list(found) == ["vllm"]
    specs = local_model_specs(found)
    assert [(s.id, s.upstream, s.input_price, s.tier) for s in specs] == [("vllm/fake-model", "fake-model", 0.0, "general")]
    settings = settings_from_environment({}, {"vllm": f"{fake_upstream.url}/v1"})
    catalog = Catalog.build(settings, extra_models=specs)
    assert catalog.resolve("auto")[0][0].id == "vllm/fake-model"


async def test_llama_cpp_python_model_gets_a_short_id_and_the_servers_default_context(local):
    """llama-cpp-python lists the model's file path as its id and reports no context size at all: the model
    is listed under the file's stem, asked for by its path, and assumed to run the server's default 2048
    rather than 8192 (the issue: a 90-character id with context 8192 on a server running 2048)."""
    local.set(wire.llama_cpp_python())
    (spec,) = (await discover(local)).values()
    assert spec.id == "llamacpp/smollm2-135m-instruct"
    assert spec.upstream == SMOLLM_PATH
    assert spec.context_window == 2048
    # JSON mode and a named tool call are grammar-constrained, so any model on this server has them
    assert spec.capabilities == frozenset({"json", "tools"})


async def test_llama_server_reports_its_served_context_in_props_not_the_trained_one(local):
    local.set(wire.llama_server(n_ctx=2048, vision=True, tools=True))
    (spec,) = (await discover(local)).values()
    assert spec.id == "llamacpp/smollm2-135m-instruct"
    assert spec.context_window == 2048, "n_ctx per slot from /props, not meta.n_ctx_train (8192)"
    assert spec.capabilities == frozenset({"json", "vision", "tools"})
    assert ("GET", "/props", None) in local.requests


async def test_llama_server_without_n_ctx_in_props_is_asked_its_slots(local):
    local.set(wire.llama_server(n_ctx=1024, props_n_ctx=False))
    (spec,) = (await discover(local)).values()
    assert spec.context_window == 1024
    assert spec.capabilities == frozenset({"json"})
    assert ("GET", "/slots", None) in local.requests


async def test_vllm_reports_max_model_len_and_a_path_id_is_shortened(local):
    local.set(wire.vllm("/models/Qwen2.5-0.5B-Instruct-AWQ", max_model_len=4096))
    (spec,) = (await discover(local, "vllm")).values()
    assert (spec.id, spec.upstream, spec.context_window) == ("vllm/qwen2.5-0.5b-instruct-awq",
                                                             "/models/Qwen2.5-0.5B-Instruct-AWQ", 4096)
    assert [r[1] for r in local.requests] == ["/v1/models"], "vLLM says everything on /v1/models"


async def test_ollama_capabilities_and_served_context(local):
    local.set(wire.ollama(
        shows={
            "llama3.2:latest": wire.ollama_show(capabilities=["completion", "tools"]),
            "qwen2.5vl:7b": wire.ollama_show(capabilities=["completion", "vision"], family="qwen25vl"),
            "qwen3:8b": wire.ollama_show(capabilities=["completion", "tools", "thinking"], family="qwen3",
                                         parameters='num_ctx                        16384\nstop "<|im_end|>"'),
            "tinyllama:latest": wire.ollama_show(capabilities=["completion"], trained_context=2048),
            "nomic-embed-text:latest": wire.ollama_show(capabilities=["embedding"], family="nomic-bert"),
        },
        running=[wire.ollama_running("qwen2.5vl:7b", 8192)]))
    specs = await discover(local, "ollama")
    got = {i: (s.context_window, sorted(s.capabilities), s.mode, s.tier) for i, s in specs.items()}
    assert got == {
        # not loaded, no num_ctx: Ollama's smallest default (4096), not the 131072 it was trained for
        "ollama/llama3.2:latest": (4096, ["json", "tools"], "chat", "general"),
        "ollama/qwen2.5vl:7b": (8192, ["json", "vision"], "chat", "general"),  # loaded: /api/ps says
        "ollama/qwen3:8b": (16384, ["json", "reasoning", "tools"], "chat", "general"),  # the Modelfile's num_ctx
        "ollama/tinyllama:latest": (2048, ["json"], "chat", "general"),  # trained for less than the default
        "ollama/nomic-embed-text:latest": (4096, ["json"], "embedding", None),
    }
    shows = [body for method, path, body in local.requests if path == "/api/show"]
    assert {"model": "llama3.2:latest"} in shows
    catalog = Catalog.build(settings_from_environment({}, {"ollama": f"{local.url}/v1"}), extra_models=specs.values())
    assert "ollama/nomic-embed-text:latest" not in [m.id for m in catalog.resolve("auto")[0]]
    assert catalog.resolve_embedding("ollama/nomic-embed-text:latest", None).upstream == "nomic-embed-text:latest"


async def test_two_quantisations_of_one_model_keep_their_quantisation_in_the_id(local):
    local.set({("GET", "/v1/models"): {"object": "list", "data": [
        {"id": "/m/Llama-3.2-3B-Instruct-Q4_K_M.gguf", "object": "model", "owned_by": "me", "permissions": []},
        {"id": "/m/Llama-3.2-3B-Instruct-Q8_0.gguf", "object": "model", "owned_by": "me", "permissions": []},
        {"id": "/m/SmolLM2-135M-Instruct.Q4_1.gguf", "object": "model", "owned_by": "me", "permissions": []}]}})
    assert sorted(await discover(local)) == ["llamacpp/llama-3.2-3b-instruct-q4_k_m",
                                             "llamacpp/llama-3.2-3b-instruct-q8_0", "llamacpp/smollm2-135m-instruct"]


async def test_a_server_that_answers_nothing_else_keeps_the_fallback(local):
    local.set({("GET", "/v1/models"): {"object": "list", "data": [{"id": "some-model", "object": "model"}]}})
    (spec,) = (await discover(local)).values()
    assert (spec.id, spec.context_window) == ("llamacpp/some-model", 8192)


@pytest.mark.parametrize(("upstream", "short"), [
    (SMOLLM_PATH, "smollm2-135m-instruct"),
    ("models/Llama-3.2-3B-Instruct-Q4_K_M.gguf", "llama-3.2-3b-instruct"),
    ("/m/Meta-Llama-3-8B-Instruct.IQ3_XXS.gguf", "meta-llama-3-8b-instruct"),
    ("/m/qwen2.5-7b-instruct-q4_k_m-00001-of-00002.gguf", "qwen2.5-7b-instruct"),
    ("./gpt-oss-20b-MXFP4.gguf", "gpt-oss-20b"),
    ("C:\\models\\Phi-3-mini-4k-instruct-fp16.gguf", "phi-3-mini-4k-instruct"),
    ("/m/ggml-model-BF16.gguf", "ggml-model"),
    ("/models/Qwen2.5-0.5B-Instruct-AWQ", "qwen2.5-0.5b-instruct-awq"),
    ("llama3.2:latest", "llama3.2:latest"),          # Ollama names are already readable
    ("Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B-Instruct"),  # so are Hugging Face repository names
])
def test_readable_id(upstream, short):
    assert readable_id(upstream) == short
