"""Local OpenAI-compatible servers are found by asking them for their models, on loopback only."""

from __future__ import annotations

import socket

from tierroute.catalog import Catalog
from tierroute.config import settings_from_environment
from tierroute.discovery import local_model_specs, probe_local_servers


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_answering_servers_become_free_general_tier_models(fake_upstream):
    found = await probe_local_servers({"vllm": f"{fake_upstream.url}/v1",
                                       "ollama": f"http://127.0.0.1:{closed_port()}/v1"})
    assert list(found) == ["vllm"]
    specs = local_model_specs(found)
    assert [(s.id, s.upstream, s.input_price, s.tier) for s in specs] == [("vllm/fake-model", "fake-model", 0.0, "general")]
    settings = settings_from_environment({}, {"vllm": f"{fake_upstream.url}/v1"})
    catalog = Catalog.build(settings, extra_models=specs)
    assert catalog.resolve("auto")[0][0].id == "vllm/fake-model"
