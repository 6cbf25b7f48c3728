"""The learned policy and semantic intents, configured in YAML and seen through `tierroute route` and the gateway."""

from __future__ import annotations

import json
import subprocess
import sys

import openai
import yaml

INTENTS = {"threshold": 0.3, "routes": [
    {"name": "code", "tier": "reasoning", "utterances": ["write a python function that parses json",
                                                        "fix this stack trace in my java code",
                                                        "refactor this class and add unit tests"]},
    {"name": "chit-chat", "models": ["small"], "utterances": ["hi there, how are you?", "tell me a joke",
                                                               "good morning! how was your weekend"]},
]}


def route(config, prompt: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "tierroute", "route", prompt, "--config", str(config), "--json"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_intents_and_learned_policy_from_config(tmp_path, fake_upstream):
    from ..conftest import fake_settings  # the three-model catalog the gateway tests use

    raw = fake_settings(fake_upstream.url, tmp_path).model_dump(exclude_defaults=True)
    raw["intents"] = INTENTS
    raw["router"] = {"policy": "learned"}
    config = tmp_path / "tierroute.yaml"
    config.write_text(yaml.safe_dump(raw))

    code = route(config, "Write a python function that parses this json file and fix the stack trace")
    assert code["intent"]["match"] == "code" and code["chosen"] == "big"
    assert code["resolved_as"].startswith("intent code")
    chat = route(config, "hi! how are you this morning?")
    assert chat["intent"]["match"] == "chit-chat" and chat["chosen"] == "small"
    other = route(config, "Summarise the causes of the French revolution in three bullet points")
    assert other["intent"]["match"] is None and set(other["intent"]["scores"]) == {"code", "chit-chat"}
    assert other["policy"] == "learned" and other["candidates"][0]["predicted_quality"] is not None

    human = subprocess.run([sys.executable, "-m", "tierroute", "route", "tell me a joke", "--config", str(config)],
                           capture_output=True, text=True, timeout=60)
    assert "intent: chit-chat" in human.stdout and "scores:" in human.stdout


def test_bad_policy_options_are_named(tmp_path, fake_upstream):
    from ..conftest import fake_settings

    raw = fake_settings(fake_upstream.url, tmp_path).model_dump(exclude_defaults=True)
    raw["router"] = {"policy": "learned", "options": {"lambda": "lots"}}
    config = tmp_path / "tierroute.yaml"
    config.write_text(yaml.safe_dump(raw))
    serve = subprocess.run([sys.executable, "-m", "tierroute", "route", "x", "--config", str(config)],
                           capture_output=True, text=True, timeout=60)
    assert serve.returncode == 2 and "router.options.lambda" in serve.stderr


def test_gateway_with_learned_policy(gateway_factory):
    gw = gateway_factory(router={"policy": "learned"})
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "What is the capital of France?"}])
    assert raw.headers["x-tierroute-model"] in {"small", "mid"}
    assert "tier general" in raw.headers["x-tierroute-reason"]
