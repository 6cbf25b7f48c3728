"""``tierroute train/eval --encoder endpoint ...`` against a loopback embeddings server, with the disk cache."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tierroute.evaluation.commands import eval_command, train_command
from tierroute.policies.artifact import load_artifact
from tierroute.policies.encoders.featurizer import EmbeddingFeaturizer
from tests.fakes.openai_embeddings import FakeEmbeddings
from tests.outcome_samples import GSM8K, write_sample


@pytest.fixture(scope="module")
def fake() -> FakeEmbeddings:
    return FakeEmbeddings().start()


@pytest.fixture
def gsm8k(tmp_path: Path) -> Path:
    return write_sample(GSM8K, tmp_path / "g.jsonl", 300)


def test_train_and_eval_with_an_endpoint_encoder_use_the_cache(fake: FakeEmbeddings, gsm8k: Path, tmp_path: Path) -> None:
    enc = ["--encoder", "endpoint", "--encoder-url", f"{fake.url}/v1", "--encoder-model", "fake-embed",
           "--encoder-cache", str(tmp_path / "cache.sqlite")]
    router = tmp_path / "r.npz"
    res = CliRunner().invoke(train_command, ["--data", str(gsm8k), "--out", str(router), "--bits", "12", "--fast",
                                             "--json", *enc], env={"TIERROUTE_ENCODER_API_KEY": "sk-e"})
    assert res.exit_code == 0, res.output
    sent = sum(len(r["input"]) for r in fake.requests)
    assert sent == 300 and fake.headers[0]["Authorization"] == "Bearer sk-e"
    art = load_artifact(router)
    assert isinstance(art.featurizer, EmbeddingFeaturizer) and "--encoder endpoint" in art.provenance["command"]
    res = CliRunner().invoke(eval_command, ["--cv", "5", "--fast", "--bits", "12", "--data", str(gsm8k), "--json", *enc])
    assert res.exit_code == 0, res.output
    assert sum(len(r["input"]) for r in fake.requests) == sent  # every prompt came from the cache
    assert 0 < json.loads(res.stdout)["two_model"]["apgr"] < 1
    res = CliRunner().invoke(eval_command, ["--router", str(router), "--data", str(gsm8k), "--json"])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(("args", "message"), [
    (["--encoder", "endpoint", "--encoder-model", "m"], "needs --encoder-url and --encoder-model"),
    (["--encoder-url", "http://127.0.0.1:1/v1"], "need --encoder endpoint"),
    (["--encoder", "endpoint", "--encoder-url", "localhost:1", "--encoder-model", "m"], "expected an http"),
])
def test_bad_encoder_options_are_clean_errors(gsm8k: Path, tmp_path: Path, args: list[str], message: str) -> None:
    res = CliRunner().invoke(train_command, ["--data", str(gsm8k), "--out", str(tmp_path / "r.npz"), *args])
    assert res.exit_code != 0 and message in res.output and "Traceback" not in res.output
