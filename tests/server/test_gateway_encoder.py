"""A gateway routing with an encoder-backed trained router, end to end on loopback: the embeddings endpoint is
awaited without blocking the event loop, and an encoder failure degrades to the catalog priors."""

from __future__ import annotations

import http.client
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from ..fakes.openai_embeddings import FakeEmbeddings

MODEL_MAP = {"gpt-4-1106-preview": "big", "mistralai/Mixtral-8x7B-Instruct-v0.1": "small"}
QUESTION = "Janet has 16 eggs. She eats 3 and bakes muffins with 4. She sells the rest at $2 each. How much does she make?"


def _gateway(gateway_factory: Any, encoder_router: Path, embeddings: FakeEmbeddings, **encoder: Any) -> Any:
    options = {"artifact": str(encoder_router), "model_map": MODEL_MAP,
               "encoder": {"base_url": f"{embeddings.url}/v1", "api_key": "sk-embed", **encoder}}
    return gateway_factory(router={"policy": "learned", "options": options})


def _get(gw: Any, method: str, path: str, body: dict | None = None) -> tuple[int, Any, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    conn.request(method, path, body=orjson.dumps(body) if body is not None else None,
                 headers={"content-type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, orjson.loads(data) if data else None, {k.lower(): v for k, v in resp.getheaders()}


def _ask(gw: Any) -> tuple[int, Any, dict[str, str]]:
    return _get(gw, "POST", "/v1/chat/completions", {"model": "auto", "messages": [{"role": "user", "content": QUESTION}]})


def test_routes_with_the_embedding_of_the_prompt(gateway_factory: Any, encoder_router: Path, embeddings: FakeEmbeddings) -> None:
    gw = _gateway(gateway_factory, encoder_router, embeddings)
    status, data, headers = _ask(gw)
    assert status == 200, data
    assert headers["x-tierroute-model"] in {"big", "mid", "small"}
    assert "encoder failed" not in headers["x-tierroute-reason"]
    assert [r["input"] for r in embeddings.requests] == [[QUESTION]]
    assert embeddings.requests[0]["model"] == "fake-embed"
    assert embeddings.headers[0]["Authorization"] == "Bearer sk-embed"
    # a request naming its model is never routed, so it costs no encoding
    assert _get(gw, "POST", "/v1/chat/completions", {"model": "small", "messages": [{"role": "user", "content": "hi"}]})[0] == 200
    assert len(embeddings.requests) == 1


def test_a_slow_encoder_does_not_block_the_event_loop(gateway_factory: Any, encoder_router: Path,
                                                      embeddings: FakeEmbeddings) -> None:
    gw = _gateway(gateway_factory, encoder_router, embeddings)
    embeddings.behaviour.delay_seconds = 0.6
    result: list[Any] = []
    slow = threading.Thread(target=lambda: result.append(_ask(gw)))
    slow.start()
    deadline = time.monotonic() + 5
    while not embeddings.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    assert _get(gw, "GET", "/health")[0] == 200
    assert time.monotonic() - started < 0.3  # answered while the routed request still waits for its embedding
    slow.join(10)
    assert result and result[0][0] == 200


@pytest.mark.parametrize("behaviour", [{"status": 503}, {"delay_seconds": 1.0}])
def test_encoder_failure_routes_on_priors_and_says_so(gateway_factory: Any, encoder_router: Path,
                                                      embeddings: FakeEmbeddings, behaviour: dict) -> None:
    gw = _gateway(gateway_factory, encoder_router, embeddings, timeout_seconds=0.2)
    for key, value in behaviour.items():
        setattr(embeddings.behaviour, key, value)
    status, data, headers = _ask(gw)
    assert status == 200, data
    assert "the encoder failed, used catalog priors" in headers["x-tierroute-reason"]


async def test_closing_the_router_closes_its_encoder(encoder_router: Path, embeddings: FakeEmbeddings, tmp_path: Path) -> None:
    from tierroute.router import Router

    from ..conftest import fake_settings

    options = {"artifact": str(encoder_router), "model_map": MODEL_MAP, "encoder": {"base_url": f"{embeddings.url}/v1"}}
    router = Router(fake_settings("http://127.0.0.1:9", tmp_path, router={"policy": "learned", "options": options}))
    plan = await router.plan({"model": "auto", "messages": [{"role": "user", "content": QUESTION}]})
    assert plan.features.embedding is not None and len(plan.features.embedding) == 16
    encoder = router.policy.featurizer.encoder  # type: ignore[attr-defined]
    assert encoder._client is not None  # the embeddings connection is open
    await router.aclose()
    assert encoder._client is None
