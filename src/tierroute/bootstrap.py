"""Build a ready :class:`Router` from a config file, or from the environment when there is none."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .budgets import build_limits_guard
from .catalog import Catalog, stale_prices
from .config import LOCAL_SERVERS, ProviderSettings, Settings, find_config_file, load_settings_file, settings_from_environment
from .discovery import local_model_specs, probe_local_servers
from .guards import Guard
from .journal import Journal
from .ledger import open_ledger
from .router import Router
from .types import ModelSpec

log = logging.getLogger("tierroute")


@dataclass(frozen=True, slots=True)
class Loaded:
    settings: Settings
    catalog: Catalog
    source: str


def load(config: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None,
         discover: bool = True, local_servers: Mapping[str, str] = LOCAL_SERVERS) -> Loaded:
    """Settings and catalog from ``config`` (or ``$TIERROUTE_CONFIG``, or ./tierroute.yaml), else the environment.

    Local servers answering on ``local_servers`` add their models either way (unless ``discover`` is False or
    the file says ``discovery: false``); the file's own providers and ``models:`` entries win over them."""
    env = os.environ if environ is None else environ
    path = find_config_file(config, env)
    if path is not None:
        settings = load_settings_file(Path(path), env)
        found = _discover(local_servers, settings.providers) if discover and settings.discovery else {}
        settings = with_local_servers(settings, {name: local_servers[name] for name in found})
        if settings.discovery:  # also when this caller skips probing (commands that read only settings)
            settings = _without_absent_local_overrides(settings, local_servers, local_model_specs(found))
        catalog = Catalog.build(settings, extra_models=local_model_specs(found))
        _warn_stale(settings, catalog)
        return Loaded(settings=settings, catalog=catalog, source=str(path))
    found = _discover(local_servers, {}) if discover else {}
    settings = settings_from_environment(env, {name: local_servers[name] for name in found})
    catalog = Catalog.build(settings, extra_models=local_model_specs(found))
    _warn_stale(settings, catalog)
    return Loaded(settings=settings, catalog=catalog, source="environment")


def _discover(local_servers: Mapping[str, str], configured: Mapping[str, ProviderSettings]) -> dict[str, Any]:
    """The answering local servers, skipping a name the config gives to another address (its entry wins)."""
    wanted = {name: base for name, base in local_servers.items()
              if name not in configured or configured[name].api_base.rstrip("/") == base.rstrip("/")}
    if not wanted:
        return {}
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(probe_local_servers(wanted))
    # Called from async code (a test, an embedding app): probe on a thread with its own loop.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, probe_local_servers(wanted)).result()


def with_local_servers(settings: Settings, servers: Mapping[str, str]) -> Settings:
    """``settings`` with a provider for each discovered server it does not configure itself."""
    added = {name: ProviderSettings(kind="openai", api_base=base) for name, base in servers.items()
             if name not in settings.providers}
    return settings.model_copy(update={"providers": {**settings.providers, **added}}) if added else settings


def _without_absent_local_overrides(settings: Settings, local_servers: Mapping[str, str],
                                    discovered: list[ModelSpec]) -> Settings:
    """Drop ``models:`` entries that only adjust a discovered local model (``ollama/qwen2.5:7b`` with no
    provider of its own) when that model was not found this time: a local server being down must not stop
    the gateway from starting. Logged, so a typo in the id is still seen."""
    found = {m.id for m in discovered}
    prefixes = tuple(f"{name}/" for name in local_servers)
    absent = [m for m in settings.models
              if m.provider is None and m.id.startswith(prefixes) and m.id not in found]
    if not absent:
        return settings
    log.warning("not found on a local server, so left out: %s", ", ".join(m.id for m in absent))
    return settings.model_copy(update={"models": [m for m in settings.models if m not in absent]})


def _warn_stale(settings: Settings, catalog: Catalog) -> None:
    """One log line at start-up when catalog prices are older than ``catalog.max_price_age_days``."""
    # Undated prices are only listed by `tierroute catalog check`: custom entries rarely carry a date.
    stale = [(m, why) for m, why in stale_prices(catalog.models.values(),
                                                  max_age_days=settings.catalog.max_price_age_days,
                                                  today=datetime.now(timezone.utc).date()) if m.as_of]
    if stale:
        log.warning("%d catalog price(s) older than %d days (%s); `tierroute catalog check` lists them",
                    len(stale), settings.catalog.max_price_age_days,
                    ", ".join(m.id for m, _ in stale[:5]) + (" ..." if len(stale) > 5 else ""))


def build_router(config: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None,
                 discover: bool = True, with_ledger: bool = True) -> Router:
    return router_for(load(config, environ=environ, discover=discover), with_ledger=with_ledger)


def router_for(loaded: Loaded, *, with_ledger: bool = True) -> Router:
    """The router for loaded settings: ledger, guards and the crash journal they share, wired together."""
    journal = open_journal(loaded.settings) if with_ledger else None
    ledger = open_ledger(loaded.settings.ledger, journal=journal) if with_ledger else None
    router = Router(loaded.settings, catalog=loaded.catalog, ledger=ledger,
                    guards=build_guards(loaded.settings, journal=journal, catalog=loaded.catalog), journal=journal)
    if journal is not None:
        journal.adopt()  # what processes that died here still owed the ledger and the budgets
    return router


def open_journal(settings: Settings) -> Journal | None:
    """The crash journal, when there is something to keep: a ledger to write, or a shared store to charge."""
    shared_store = settings.limits.enabled and settings.limits.state.backend != "memory"
    if not settings.ledger.journal or (settings.ledger.backend == "none" and not shared_store):
        return None
    return Journal(settings.ledger.journal_directory())


def build_guards(settings: Settings, *, journal: Journal | None = None, catalog: Catalog | None = None) -> list[Guard]:
    """The guards ``limits:`` asks for: none when it is empty, so unlimited gateways pay nothing. Keys named
    in ``limits:`` are already caller ids (``parse_settings`` resolves them, see budgets/keys.py). With
    ``keys.enabled`` the guard also enforces each virtual key (keys/guard.py) and owns the key registry."""
    limits = settings.limits
    if settings.keys.enabled:
        from .budgets import open_state_store
        from .keys.db import Database
        from .keys.guard import KeyGuard
        from .keys.registry import KeyRegistry
        from .keys.store import KeyStore

        registry = KeyRegistry(KeyStore(Database(settings.ledger)),
                               poll_interval_seconds=settings.keys.poll_interval_seconds)
        registry.start()
        shared = limits.state.backend != "memory"
        return [KeyGuard(limits, open_state_store(limits), registry, catalog or Catalog.build(settings),
                         journal=journal if shared else None)]
    guard = build_limits_guard(limits, journal=journal)
    return [guard] if guard is not None else []


def gateway_app() -> Any:
    """An ASGI app from ``$TIERROUTE_CONFIG`` (else the environment) with ledger and guards: what each worker
    of ``tierroute serve --workers N`` runs. Prefer that command to calling this from ``uvicorn --factory``
    yourself: it refuses a public bind without API keys."""
    from .server import create_app
    from .server.collector import tune_for_serving

    app = create_app(build_router())
    tune_for_serving()
    return app
