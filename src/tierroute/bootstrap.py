"""Build a ready :class:`Router` from a config file, or from the environment when there is none."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any
from dataclasses import dataclass
from pathlib import Path

from .budgets import build_limits_guard
from .catalog import Catalog
from .config import LOCAL_SERVERS, Settings, find_config_file, load_settings_file, settings_from_environment
from .discovery import local_model_specs, probe_local_servers
from .guards import Guard
from .journal import Journal
from .ledger import open_ledger
from .router import Router

@dataclass(frozen=True, slots=True)
class Loaded:
    settings: Settings
    catalog: Catalog
    source: str


def load(config: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None,
         discover: bool = True) -> Loaded:
    """Settings and catalog from ``config`` (or ``$TIERROUTE_CONFIG``, or ./tierroute.yaml), else the environment."""
    env = os.environ if environ is None else environ
    path = find_config_file(config, env)
    if path is not None:
        settings = load_settings_file(Path(path), env)
        return Loaded(settings=settings, catalog=Catalog.build(settings), source=str(path))
    found = asyncio.run(probe_local_servers(LOCAL_SERVERS)) if discover else {}
    settings = settings_from_environment(env, {name: LOCAL_SERVERS[name] for name in found})
    catalog = Catalog.build(settings, extra_models=local_model_specs(found))
    return Loaded(settings=settings, catalog=catalog, source="environment")


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

    return create_app(build_router())
