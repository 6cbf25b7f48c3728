"""Settings: the only place that reads configuration files and the environment.

``load_settings`` returns frozen, validated :class:`Settings` or raises one :class:`ConfigError` that names
every offending field. Secrets never live in the file: string values may reference the environment as
``${NAME}`` or ``${NAME:-default}``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._exceptions import ConfigError
from .budgets.keys import resolve_keys
from .budgets.settings import LimitsSettings
from .observability.settings import AccessLogFormat, TelemetrySettings
from .evals.settings import EvalsSettings
from .keys.settings import KeysSettings
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

    kind: Literal["openai", "anthropic"] = Field(
        default="openai", description="wire format the endpoint speaks (OpenAI chat completions or Anthropic messages)")
    api_base: str = Field(description="base URL, e.g. https://api.openai.com/v1; preset for hosted providers "
                                      "named after themselves (openai, anthropic, gemini, mistral, groq, together, "
                                      "deepseek, openrouter)")
    api_key: str | None = Field(default=None, description="the provider's key, usually ${ENV_NAME}; hosted presets "
                                                          "read their usual variable when absent")
    headers: dict[str, str] = Field(default_factory=dict, description="extra HTTP headers sent with every call")
    connect_timeout_seconds: float = Field(default=5.0, gt=0, description="limit for opening a connection")
    first_token_timeout_seconds: float = Field(
        default=60.0, gt=0, description="limit until the response (or a stream's first chunk) starts")
    first_byte_timeout_seconds: float = Field(
        default=120.0, gt=0, description="limit for a plain (non-streamed) answer to start arriving; servers send "
                                         "nothing until the whole answer is generated, so this covers the longest "
                                         "answer expected")
    stream_idle_timeout_seconds: float = Field(default=30.0, gt=0, description="limit between two chunks of a "
                                                                               "stream that has started")
    total_timeout_seconds: float = Field(default=600.0, gt=0, description="limit for one whole upstream call")
    max_connections: int = Field(default=200, ge=1, description="open connections to this provider, per process")
    # "fast": the lean keep-alive client; "aiohttp" is used anyway when HTTP(S)_PROXY applies to api_base.
    http_client: Literal["fast", "aiohttp"] = Field(
        default="fast", description="HTTP client: fast (lean keep-alive) or aiohttp; aiohttp is used anyway when "
                                    "HTTP(S)_PROXY applies to api_base")
    max_response_bytes: int = Field(default=DEFAULT_MAX_RESPONSE_BYTES, ge=1024, description="largest answer "
                                    "read from the provider, after decompression; larger is an upstream error")
    max_error_bytes: int = Field(default=DEFAULT_MAX_ERROR_BYTES, ge=1024, description="most of an error body "
                                 "read; the message relayed to the client is cut shorter")
    max_event_bytes: int = Field(default=DEFAULT_MAX_EVENT_BYTES, ge=1024, description="largest single stream "
                                 "event line")

    @field_validator("api_base")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        return value.rstrip("/")


class ModelSettings(_Frozen):
    """A catalog entry to add, or fields overriding a built-in entry with the same ``id``."""

    id: str = Field(description="the name clients send as `model`; a built-in id overrides that entry's fields")
    provider: str | None = Field(default=None, description="the `providers` entry that serves it (required for a "
                                                           "new model)")
    upstream: str | None = Field(default=None, description="the model name sent to the provider (default: id)")
    context_window: int | None = Field(default=None, gt=0, description="prompt plus completion tokens it accepts "
                                                                       "(required for a new model)")
    max_output_tokens: int | None = Field(default=None, gt=0, description="largest completion it can produce")
    input_price: float | None = Field(default=None, ge=0, description="USD per million prompt tokens (required "
                                                                      "for a new model)")
    output_price: float | None = Field(default=None, ge=0, description="USD per million completion tokens "
                                                                       "(required for a new model)")
    capabilities: list[Literal["tools", "vision", "json", "reasoning"]] | None = Field(
        default=None, description="what it supports; requests that need a capability skip models without it")
    tier: str | None = Field(default=None, description="the tier it belongs to when `tiers` does not list models")
    quality: float | None = Field(default=None, ge=0, le=1, description="quality prior in [0, 1] used by the "
                                                                        "untrained router and as the savings "
                                                                        "reference")
    source: str | None = Field(default=None, description="where the prices come from (informational)")
    as_of: str | None = Field(default=None, description="date the prices were read, YYYY-MM-DD (`tierroute "
                                                        "catalog check` warns when older than "
                                                        "catalog.max_price_age_days)")
    quality_source: str | None = Field(default=None, description="where the quality prior comes from "
                                                                 "(informational)")
    quality_as_of: str | None = Field(default=None, description="date the quality prior was read (informational)")
    cached_input_price: float | None = Field(default=None, ge=0, description="USD per million prompt tokens read "
                                                                             "from the provider's prompt cache "
                                                                             "(default: input_price)")
    cache_write_price: float | None = Field(default=None, ge=0, description="USD per million prompt tokens "
                                                                            "written to the prompt cache "
                                                                            "(Anthropic; default: input_price)")
    long_context_threshold: int | None = Field(default=None, gt=0, description="prompt tokens above which the "
                                                                               "long-context prices apply to the "
                                                                               "whole request")
    long_context_input_price: float | None = Field(default=None, ge=0, description="USD per million prompt tokens "
                                                                                   "above long_context_threshold")
    long_context_output_price: float | None = Field(default=None, ge=0, description="USD per million completion "
                                                                                    "tokens above "
                                                                                    "long_context_threshold")
    mode: Literal["chat", "embedding"] | None = Field(
        default=None, description="chat (default) or embedding: embedding models answer /v1/embeddings only and "
                                  "are never routed to for chat")

    @field_validator("as_of", "quality_as_of", mode="before")
    @classmethod
    def _date_as_text(cls, value: Any) -> Any:
        """YAML reads an unquoted ``as_of: 2026-11-20`` as a date; keep it as the text it was."""
        return value.isoformat() if isinstance(value, date) else value


class DeploymentSettings(_Frozen):
    """An extra place a model is served (another provider, region or key)."""

    model: str = Field(description="catalog id of the model served")
    provider: str = Field(description="the `providers` entry that serves it")
    upstream: str | None = Field(default=None, description="the model name at that provider (default: the "
                                                           "model's upstream)")
    id: str | None = Field(default=None, description="deployment id in headers, metrics and limits (default: "
                                                     "provider/upstream)")
    weight: float = Field(default=1.0, gt=0, description="share of traffic relative to the model's other "
                                                         "deployments")


class TierSettings(_Frozen):
    name: str = Field(description="tier name; clients may send it as `model`")
    models: list[str] | None = Field(default=None, description="catalog ids in this tier (default: the models "
                                                               "whose `tier` is this name)")


class ExperimentArm(_Frozen):
    """One router version in an A/B experiment: a policy with its options, and its share of the traffic."""

    name: str = Field(min_length=1, max_length=64, description="the arm's name, recorded with each request "
                      "(ledger column arm, header x-tierroute-arm)")
    policy: str = Field(description="learned or cheapest, as router.policy")
    options: dict[str, Any] = Field(default_factory=dict, description="the arm's policy options, as "
                                    "router.options (a learned arm's artifact, lambda, ...)")
    weight: float = Field(default=1.0, gt=0, description="the arm's share of sticky keys, relative to the "
                          "other arms' weights")


class ExperimentSettings(_Frozen):
    """An A/B test between router versions (docs/continuous-evaluation.md, "A/B between router versions")."""

    name: str = Field(min_length=1, max_length=64, description="the experiment's name; it salts the hash that "
                      "assigns keys to arms, so a new name reshuffles every key")
    arms: list[ExperimentArm] = Field(min_length=2, description="two or more arms; names must be distinct")
    sticky_by: Literal["caller", "session", "user"] = Field(
        default="caller", description="what keeps a request in its arm: the caller (key name), the "
        "'session:<id>' tag, or the request's user field. Requests without one are assigned by a hash of the "
        "client's request id, else of the prompt")

    @field_validator("arms")
    @classmethod
    def _distinct_names(cls, arms: list[ExperimentArm]) -> list[ExperimentArm]:
        names = [a.name for a in arms]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate arm name {', '.join(map(repr, duplicates))}")
        return arms


class CascadeSettings(_Frozen):
    """Opt-in cascade for routed, non-streamed requests (docs/routing-quality.md, "Cascades")."""

    enabled: bool = Field(default=False, description="answer routed (model \"auto\" or a tier), non-streamed "
                                                      "requests with the cheap models first; streams are never "
                                                      "cascaded (the first answer would have to be held back)")
    models: list[str] = Field(default_factory=list, description="two or three cheap models, called concurrently; "
                                                                "their answers must agree")
    escalate_to: str | None = Field(default=None, description="the model that answers when the cheap models "
                                                              "disagree, or one of them fails or gives no answer")
    strategy: Literal["agreement"] = Field(default="agreement", description="agreement: every cheap model gives "
                                                                            "the same final answer")
    answer: Literal["auto", "choice", "number", "text"] = Field(
        default="auto", description="what is compared: the option letter (choice), the final number (number), "
                                    "normalised text (text), or auto (whichever the reply has)")


class RouterSettings(_Frozen):
    # The untrained learned router (catalog priors x prompt difficulty) works out of the box, and a gateway running
    # it keeps within 20% of the throughput it has with "cheapest" (docs/performance.md, "Gateway overhead").
    policy: str = Field(default="learned", description="learned (cost-quality) or cheapest (the cheapest "
                                                          "eligible model)")
    options: dict[str, Any] = Field(default_factory=dict, description="the policy's options: see router.options "
                                                                      "below (cheapest takes none)")
    default_tier: str = Field(default="general", description="the tier model=\"auto\" routes among")
    # Embeddings of different models are not comparable, so they are never routed between models.
    default_embedding_model: str | None = Field(
        default=None, description="the embedding model for /v1/embeddings requests that name none (or say auto)")
    experiment: ExperimentSettings | None = Field(
        default=None, description="A/B between router versions: arms (policies) serving sticky slices of the "
        "traffic; when set, it decides instead of router.policy and router.options")
    cascade: CascadeSettings = Field(default_factory=CascadeSettings, description="cheap models first, the "
                                     "strong one only when they disagree (opt-in)")


class ServerSettings(_Frozen):
    """The HTTP server: where it listens, who may call it, and what one client may hold (docs/security.md)."""

    host: str = Field(default="127.0.0.1", description="address to bind; anything but loopback requires "
                                                          "api_keys")
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535, description="TCP port")
    api_keys: list[str] = Field(default_factory=list, description="gateway keys clients must send as Bearer "
                                                                  "tokens; empty: no authentication")
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, gt=0, description="larger request bodies get 413")
    max_header_bytes: int = Field(default=32 * 1024, ge=1024, description="request line plus headers; past "
                                  "it the request is answered 431 and the connection closed")
    max_headers: int = Field(default=100, ge=8, description="header lines per request; past it 431")
    header_timeout_seconds: float = Field(default=10.0, gt=0, description="a connection must deliver a "
                                          "request's headers within this long (slowloris)")
    keep_alive_seconds: int = Field(default=30, ge=1, description="idle kept-alive connections close after this")
    max_connections: int = Field(default=2048, ge=1, description="open client connections per worker; one more "
                                 "is answered 503 and closed at once")
    access_log: AccessLogFormat = Field(
        default="text",
        description="One line per request on the tierroute.access logger (stdout unless you configure that "
                    "logger): 'json' for log pipelines, 'text' (key=value) for people, 'off' for nothing and no "
                    "per-request cost. Never includes prompts or keys (docs/operations.md).")
    admin_key: str | None = Field(default=None, min_length=16, description="key for the admin API (/admin/) and "
                                  "the console (/ui), usually ${ENV_VAR}; separate from caller keys. Without it "
                                  "both are off, and keys.enabled refuses a non-loopback bind")


class LedgerSettings(_Frozen):
    backend: Literal["sqlite", "postgres", "none"] = Field(
        default="sqlite", description="where every attempt is recorded: sqlite (one host), postgres (shared by "
                                      "replicas) or none")
    path: str = Field(default="tierroute.db", description="SQLite database file")
    dsn: str | None = Field(default=None, description="PostgreSQL connection string, for backend postgres")
    store_prompts: bool = Field(default=False, description="keep request messages, for `tierroute export`")
    batch_size: int = Field(default=256, ge=1, description="rows written per batch by the background writer")
    flush_interval_seconds: float = Field(default=0.2, gt=0, description="longest a recorded row waits before "
                                                                         "it is written")
    # The local journal that makes recording and charging survive a crash (docs/cost-control.md, "Durability").
    journal: bool = Field(default=True, description="journal ledger rows and settlements on local disk before "
                                                    "acting on them, so a crash or a Redis outage loses neither")
    journal_dir: str | None = Field(default=None, description="the journal's directory (default: <path>.journal "
                                                              "beside a SQLite ledger, else ./tierroute-journal)")

    def journal_directory(self) -> str:
        if self.journal_dir:
            return self.journal_dir
        return f"{self.path}.journal" if self.backend == "sqlite" and self.path != ":memory:" else "tierroute-journal"


class CatalogSettings(_Frozen):
    """How old a catalog price may be before ``tierroute catalog check`` (and start-up) warn about it."""

    max_price_age_days: int = Field(default=180, gt=0, description="warn about prices whose as_of is older than "
                                                                   "this many days")


class Settings(_Frozen):
    providers: dict[str, ProviderSettings] = Field(default_factory=dict, description="upstream endpoints by name")
    models: list[ModelSettings] = Field(default_factory=list, description="models to add to the built-in catalog, "
                                                                          "or fields to override")
    deployments: list[DeploymentSettings] = Field(default_factory=list, description="more places a model is "
                                                                                    "served")
    tiers: list[TierSettings] | None = Field(default=None, description="tiers, strongest first (default: "
                                                                       "reasoning, general, extraction)")
    router: RouterSettings = Field(default_factory=RouterSettings, description="the routing policy")
    intents: IntentSettings = Field(default_factory=IntentSettings, description="optional semantic routes")
    server: ServerSettings = Field(default_factory=ServerSettings, description="the gateway's listener and keys")
    ledger: LedgerSettings = Field(default_factory=LedgerSettings, description="the record of every attempt")
    reliability: ReliabilitySettings = Field(default_factory=ReliabilitySettings, description="retries, "
                                                                                          "failover, breakers")
    keys: KeysSettings = Field(default_factory=KeysSettings, description="virtual keys managed at run time "
                               "(admin API, `tierroute keys`)")
    limits: LimitsSettings = Field(default_factory=LimitsSettings, description="budgets, rate limits, runaway "
                                                                               "protection")
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings, description="OpenTelemetry traces "
                                         "(the otel extra) and readiness checks")
    evals: EvalsSettings = Field(default_factory=EvalsSettings, description="continuous evaluation: shadow "
                                                                            "sampling, judges, the quality guard")
    catalog: CatalogSettings = Field(default_factory=CatalogSettings, description="catalog freshness checks")
    discovery: bool = Field(default=True, description="add the models of local servers answering on their usual "
                                                      "ports (Ollama 11434, vLLM 8000, llama.cpp 8080) beside the "
                                                      "configured ones; entries under `models:` win")


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# Fields whose values are credentials: an error about them never shows the value, even one written in the file.
SECRET_FIELDS = frozenset({"api_key", "api_keys", "headers", "dsn"})
# Values substituted from the environment shorter than this are not redacted from messages (they cannot be
# secrets, and replacing "1" or "true" everywhere would garble the message).
_MIN_REDACTED_CHARS = 4


def _expand(value: Any, environ: Mapping[str, str], where: str, substituted: set[str] | None = None) -> Any:
    """Replace ``${NAME}`` references in every string of a decoded YAML document, mapping keys included
    (``teams: {"${ALICE_KEY}": research}`` names a gateway key by its variable).

    Every value taken from the environment is added to ``substituted``, so error messages can leave them out.
    """
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            path = f"{where}.{k}" if where else str(k)
            out[_expand(k, environ, where or "(top level)", substituted)] = _expand(v, environ, path, substituted)
        return out
    if isinstance(value, list):
        return [_expand(v, environ, f"{where}[{i}]", substituted) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                if substituted is not None:
                    substituted.add(environ[name])
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


def redact(text: str, secrets: set[str]) -> str:
    """``text`` with every value taken from the environment replaced by ``***``, longest first."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= _MIN_REDACTED_CHARS:
            text = text.replace(secret, "***")
    return text


def format_validation_error(error: ValidationError, source: str, secrets: set[str] | None = None) -> str:
    lines = [f"{source}: invalid configuration"]
    for item in error.errors():
        loc = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in item["loc"]).replace(".[", "[")
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        value = item.get("input")
        secret = any(part in SECRET_FIELDS for part in item["loc"])
        got = "" if secret or item["type"] in ("missing", "extra_forbidden") else f" (got {value!r})"
        lines.append(f"  {loc or '(top level)'}: {message}{got}")
    return redact("\n".join(lines), secrets or set())


def parse_settings(raw: Any, *, source: str = "config", environ: Mapping[str, str] | None = None) -> Settings:
    """Validate a decoded configuration document."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    substituted: set[str] = set()
    expanded = _expand(raw, os.environ if environ is None else environ, "", substituted)
    try:
        settings = Settings.model_validate(_provider_defaults(expanded))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, substituted)) from None
    _check_references(settings, source)
    return settings.model_copy(update={"limits": resolve_keys(settings.limits, settings.server.api_keys, source)})


def _check_references(settings: Settings, source: str) -> None:
    if settings.keys.enabled and settings.ledger.backend == "none":
        raise ConfigError(f"{source}: keys.enabled: virtual keys live in the ledger's database; set ledger.backend "
                          "to sqlite or postgres")
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
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
                          "save the configuration file as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration file: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return parse_settings(raw, source=str(path), environ=environ)
