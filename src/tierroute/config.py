"""Settings: the only place that reads configuration files and the environment.

``load_settings`` returns frozen, validated :class:`Settings` or raises one :class:`ConfigError` that names
every offending field. Secrets never live in the file: string values may reference the environment as
``${NAME}`` or ``${NAME:-default}``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._exceptions import ConfigError
from .budgets.keys import resolve_keys
from .budgets.settings import LimitsSettings
from .observability.settings import AccessLogFormat, TelemetrySettings
from .policies.intents import IntentSettings
from .reliability.settings import ReliabilitySettings

CONFIG_ENV = "TIERROUTE_CONFIG"
DEFAULT_CONFIG_NAMES = ("tierroute.yaml", "tierroute.yml")
DEFAULT_PORT = 4000
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
# What one upstream answer may cost (docs/reliability.md, "Hostile upstreams"): a whole body (after gzip or
# deflate are undone), an error body (read to build the message relayed to the caller), one stream event line.
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_ERROR_BYTES = 256 * 1024
DEFAULT_MAX_EVENT_BYTES = 1024 * 1024


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderPreset(_Frozen):
    kind: Literal["openai", "anthropic"]
    api_base: str
    key_env: str | None


# Hosted providers recognised by name; a provider entry named after one needs only its key.
PROVIDER_PRESETS: Mapping[str, ProviderPreset] = MappingProxyType({
    "openai": ProviderPreset(kind="openai", api_base="https://api.openai.com/v1", key_env="OPENAI_API_KEY"),
    "anthropic": ProviderPreset(kind="anthropic", api_base="https://api.anthropic.com", key_env="ANTHROPIC_API_KEY"),
    "gemini": ProviderPreset(kind="openai", api_base="https://generativelanguage.googleapis.com/v1beta/openai", key_env="GEMINI_API_KEY"),
    "mistral": ProviderPreset(kind="openai", api_base="https://api.mistral.ai/v1", key_env="MISTRAL_API_KEY"),
    "groq": ProviderPreset(kind="openai", api_base="https://api.groq.com/openai/v1", key_env="GROQ_API_KEY"),
    "together": ProviderPreset(kind="openai", api_base="https://api.together.xyz/v1", key_env="TOGETHER_API_KEY"),
    "deepseek": ProviderPreset(kind="openai", api_base="https://api.deepseek.com/v1", key_env="DEEPSEEK_API_KEY"),
    "openrouter": ProviderPreset(kind="openai", api_base="https://openrouter.ai/api/v1", key_env="OPENROUTER_API_KEY"),
})

# Local OpenAI-compatible servers probed on their usual loopback ports when there is no config file.
LOCAL_SERVERS: Mapping[str, str] = MappingProxyType({
    "ollama": "http://127.0.0.1:11434/v1",
    "vllm": "http://127.0.0.1:8000/v1",
    "llamacpp": "http://127.0.0.1:8080/v1",
})


class ProviderSettings(_Frozen):
    """One provider endpoint. ``kind`` is its wire format."""

    kind: Literal["openai", "anthropic"] = "openai"
    api_base: str
    api_key: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    first_token_timeout_seconds: float = Field(default=60.0, gt=0)
    total_timeout_seconds: float = Field(default=600.0, gt=0)
    max_connections: int = Field(default=200, ge=1)
    # "fast": the lean keep-alive client; "aiohttp" is used anyway when HTTP(S)_PROXY applies to api_base.
    http_client: Literal["fast", "aiohttp"] = "fast"
    max_response_bytes: int = Field(default=DEFAULT_MAX_RESPONSE_BYTES, ge=1024)
    max_error_bytes: int = Field(default=DEFAULT_MAX_ERROR_BYTES, ge=1024)
    max_event_bytes: int = Field(default=DEFAULT_MAX_EVENT_BYTES, ge=1024)

    @field_validator("api_base")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        return value.rstrip("/")


class ModelSettings(_Frozen):
    """A catalog entry to add, or fields overriding a built-in entry with the same ``id``."""

    id: str
    provider: str | None = None
    upstream: str | None = None
    context_window: int | None = Field(default=None, gt=0)
    max_output_tokens: int | None = Field(default=None, gt=0)
    input_price: float | None = Field(default=None, ge=0)
    output_price: float | None = Field(default=None, ge=0)
    capabilities: list[Literal["tools", "vision", "json", "reasoning"]] | None = None
    tier: str | None = None
    quality: float | None = Field(default=None, ge=0, le=1)
    source: str | None = None
    as_of: str | None = None
    mode: Literal["chat", "embedding"] | None = None


class DeploymentSettings(_Frozen):
    """An extra place a model is served (another provider, region or key)."""

    model: str
    provider: str
    upstream: str | None = None
    id: str | None = None
    weight: float = Field(default=1.0, gt=0)


class TierSettings(_Frozen):
    name: str
    models: list[str] | None = None


class RouterSettings(_Frozen):
    # The untrained learned router (catalog priors x prompt difficulty) works out of the box, and a gateway running
    # it keeps within 20% of the throughput it has with "cheapest" (docs/performance.md, "Routing decision").
    policy: str = "learned"
    options: dict[str, Any] = Field(default_factory=dict)
    default_tier: str = "general"
    # The embedding model for /v1/embeddings requests that name none (or say "auto"). Embeddings of different
    # models are not comparable, so they are never routed between models: this is one fixed model.
    default_embedding_model: str | None = None


class ServerSettings(_Frozen):
    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    api_keys: list[str] = Field(default_factory=list)
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, gt=0)
    access_log: AccessLogFormat = Field(
        default="text",
        description="One line per request on the tierroute.access logger (stdout unless you configure that "
                    "logger): 'json' for log pipelines, 'text' (key=value) for people, 'off' for nothing and no "
                    "per-request cost. Never includes prompts or keys (docs/operations.md).")


class LedgerSettings(_Frozen):
    backend: Literal["sqlite", "postgres", "none"] = "sqlite"
    path: str = "tierroute.db"
    dsn: str | None = None
    store_prompts: bool = False
    batch_size: int = Field(default=256, ge=1)
    flush_interval_seconds: float = Field(default=0.2, gt=0)
    # The local journal that makes recording and charging survive a crash (docs/cost-control.md,
    # "Durability"). None: "<path>.journal" beside a SQLite ledger, else ./tierroute-journal.
    journal: bool = True
    journal_dir: str | None = None

    def journal_directory(self) -> str:
        if self.journal_dir:
            return self.journal_dir
        return f"{self.path}.journal" if self.backend == "sqlite" and self.path != ":memory:" else "tierroute-journal"


class Settings(_Frozen):
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    models: list[ModelSettings] = Field(default_factory=list)
    deployments: list[DeploymentSettings] = Field(default_factory=list)
    tiers: list[TierSettings] | None = None
    router: RouterSettings = Field(default_factory=RouterSettings)
    intents: IntentSettings = Field(default_factory=IntentSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    ledger: LedgerSettings = Field(default_factory=LedgerSettings)
    reliability: ReliabilitySettings = Field(default_factory=ReliabilitySettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any, environ: Mapping[str, str], where: str) -> Any:
    """Replace ``${NAME}`` references in every string of a decoded YAML document, mapping keys included
    (``teams: {"${ALICE_KEY}": research}`` names a gateway key by its variable)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            path = f"{where}.{k}" if where else str(k)
            out[_expand(k, environ, where or "(top level)")] = _expand(v, environ, path)
        return out
    if isinstance(value, list):
        return [_expand(v, environ, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            raise ConfigError(f"{where}: environment variable {name} is not set (referenced as ${{{name}}})", param=where)

        return _ENV_REF.sub(replace, value)
    return value


def _provider_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    """Fill ``kind`` and ``api_base`` for providers named after a preset."""
    providers = raw.get("providers")
    if not isinstance(providers, dict):
        return raw
    filled: dict[str, Any] = {}
    for name, entry in providers.items():
        preset = PROVIDER_PRESETS.get(name)
        if preset is not None and isinstance(entry, dict):
            entry = {"kind": preset.kind, "api_base": preset.api_base, **entry}
        filled[name] = entry
    return {**raw, "providers": filled}


def format_validation_error(error: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration"]
    for item in error.errors():
        loc = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in item["loc"]).replace(".[", "[")
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        value = item.get("input")
        got = "" if item["type"] in ("missing", "extra_forbidden") else f" (got {value!r})"
        lines.append(f"  {loc or '(top level)'}: {message}{got}")
    return "\n".join(lines)


def parse_settings(raw: Any, *, source: str = "config", environ: Mapping[str, str] | None = None) -> Settings:
    """Validate a decoded configuration document."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    expanded = _expand(raw, os.environ if environ is None else environ, "")
    try:
        settings = Settings.model_validate(_provider_defaults(expanded))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
    _check_references(settings, source)
    return settings.model_copy(update={"limits": resolve_keys(settings.limits, settings.server.api_keys, source)})


def _check_references(settings: Settings, source: str) -> None:
    for i, dep in enumerate(settings.deployments):
        if dep.provider not in settings.providers:
            raise ConfigError(f"{source}: deployments[{i}].provider: unknown provider {dep.provider!r}; "
                              f"configured: {', '.join(sorted(settings.providers)) or 'none'}")
    for i, model in enumerate(settings.models):
        if model.provider is not None and model.provider not in settings.providers:
            raise ConfigError(f"{source}: models[{i}].provider: unknown provider {model.provider!r}; "
                              f"configured: {', '.join(sorted(settings.providers)) or 'none'}")


def settings_from_environment(environ: Mapping[str, str], local_servers: Mapping[str, str] = MappingProxyType({})) -> Settings:
    """Settings for a run with no file: every hosted provider whose key is set, plus answering local servers."""
    providers: dict[str, Any] = {}
    for name, preset in PROVIDER_PRESETS.items():
        key = environ.get(preset.key_env or "")
        if name == "gemini" and not key:
            key = environ.get("GOOGLE_API_KEY")
        if key:
            api_base = environ.get("OPENAI_BASE_URL", preset.api_base) if name == "openai" else preset.api_base
            providers[name] = {"kind": preset.kind, "api_base": api_base, "api_key": key}
    for name, api_base in local_servers.items():
        providers[name] = {"kind": "openai", "api_base": api_base}
    raw: dict[str, Any] = {"providers": providers}
    if environ.get("TIERROUTE_API_KEYS"):
        raw["server"] = {"api_keys": [k for k in environ["TIERROUTE_API_KEYS"].split(",") if k]}
    return parse_settings(raw, source="environment", environ=environ)


def find_config_file(explicit: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> Path | None:
    if explicit is not None:
        return Path(explicit)
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    for name in DEFAULT_CONFIG_NAMES:
        if Path(name).is_file():
            return Path(name)
    return None


def load_settings_file(path: Path, environ: Mapping[str, str] | None = None) -> Settings:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration file: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return parse_settings(raw, source=str(path), environ=environ)
