"""Configuration: one clear error naming the field; secrets from the environment; presets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tierroute import ConfigError
from tierroute.catalog import Catalog
from tierroute.config import load_settings_file, parse_settings, settings_from_environment


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tierroute.yaml"
    path.write_text(text)
    return path


def test_invalid_yaml_names_line_and_column(tmp_path):
    path = write(tmp_path, "providers:\n  openai: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_settings_file(path)
    assert str(path) in info.value.message and "line 3" in info.value.message


def test_unknown_and_wrongly_typed_fields_are_named(tmp_path):
    path = write(tmp_path, "server:\n  port: lots\n  colour: blue\n")
    with pytest.raises(ConfigError) as info:
        load_settings_file(path)
    message = info.value.message
    assert "server.port" in message and "'lots'" in message
    assert "server.colour: unknown field" in message


def test_nested_list_errors_use_indexes():
    with pytest.raises(ConfigError) as info:
        parse_settings({"providers": {"x": {"api_base": "http://h/v1"}},
                        "models": [{"id": "m", "provider": "x", "context_window": -1}]}, environ={})
    assert "models[0].context_window" in info.value.message


def test_secrets_come_from_environment():
    raw = {"providers": {"openai": {"api_key": "${MY_KEY}"}}}
    settings = parse_settings(raw, environ={"MY_KEY": "sk-1"})
    assert settings.providers["openai"].api_key == "sk-1"
    assert settings.providers["openai"].api_base == "https://api.openai.com/v1"  # filled from the preset
    with pytest.raises(ConfigError) as info:
        parse_settings(raw, environ={})
    assert "providers.openai.api_key: environment variable MY_KEY is not set" in info.value.message
    assert parse_settings({"providers": {"openai": {"api_key": "${MY_KEY:-fallback}"}}}, environ={}).providers["openai"].api_key == "fallback"


def test_unknown_provider_reference_is_named():
    with pytest.raises(ConfigError) as info:
        parse_settings({"deployments": [{"model": "gpt-4o", "provider": "azure"}]}, environ={})
    assert "deployments[0].provider: unknown provider 'azure'" in info.value.message


def test_bad_api_base():
    with pytest.raises(ConfigError) as info:
        parse_settings({"providers": {"local": {"api_base": "localhost:8000"}}}, environ={})
    assert "providers.local.api_base" in info.value.message and "http://" in info.value.message


def test_environment_builds_every_provider_with_a_key():
    env = {"OPENAI_API_KEY": "a", "ANTHROPIC_API_KEY": "b", "GOOGLE_API_KEY": "c", "GROQ_API_KEY": "d",
           "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "TIERROUTE_API_KEYS": "k1,k2"}
    settings = settings_from_environment(env, {"ollama": "http://127.0.0.1:11434/v1"})
    assert set(settings.providers) == {"openai", "anthropic", "gemini", "groq", "ollama"}
    assert settings.providers["anthropic"].kind == "anthropic"
    assert settings.providers["openai"].api_base == "http://127.0.0.1:9/v1"
    assert settings.server.api_keys == ["k1", "k2"]
    catalog = Catalog.build(settings)
    assert "gpt-5" in catalog.models and "claude-sonnet-5-5" in catalog.models and "gemini-3.8-flash" in catalog.models
    assert "deepseek-v4-flash" not in catalog.models, "providers without a key are left out"


def test_bad_config_exits_nonzero_with_one_clear_line(tmp_path):
    path = write(tmp_path, "router:\n  policy: psychic\n")
    result = subprocess.run([sys.executable, "-m", "tierroute", "serve", "--config", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "router.policy: unknown policy 'psychic'" in result.stderr
    assert "Traceback" not in result.stderr


def test_errors_never_show_secrets():
    """A key from the environment, put where a list belongs, must not be echoed in the error (issue 15 item 22)."""
    secret = "gw-9f8e7d6c5b4a39281706"
    with pytest.raises(ConfigError) as info:
        parse_settings({"server": {"api_keys": "${GATEWAY_KEYS}"}}, environ={"GATEWAY_KEYS": secret})
    assert "server.api_keys" in info.value.message and secret not in info.value.message
    # written in the file itself, a credential field still does not echo its value
    with pytest.raises(ConfigError) as info:
        parse_settings({"providers": {"x": {"api_base": "http://h/v1", "api_key": ["sk-literal-secret"]}}}, environ={})
    assert "providers.x.api_key" in info.value.message and "sk-literal-secret" not in info.value.message
    # an environment value inside a message a validator wrote (api_base carrying credentials) is redacted too
    with pytest.raises(ConfigError) as info:
        parse_settings({"providers": {"x": {"api_base": "${BASE}"}}}, environ={"BASE": "ftp://user:hunter22@h"})
    assert "providers.x.api_base" in info.value.message and "hunter22" not in info.value.message
    # ordinary values are still shown, so the error stays useful
    with pytest.raises(ConfigError) as info:
        parse_settings({"server": {"port": "lots"}}, environ={})
    assert "'lots'" in info.value.message


def test_non_utf8_config_is_a_clear_error_with_exit_2(tmp_path):
    path = tmp_path / "tierroute.yaml"
    path.write_bytes("server:\n  host: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_settings_file(path)
    assert "not UTF-8" in info.value.message and "0xe9" in info.value.message
    result = subprocess.run([sys.executable, "-m", "tierroute", "models", "--config", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "not UTF-8" in result.stderr
