"""``tierroute keys ...``: manage virtual keys straight in the ledger's database (audited as ``cli``).

Every replica picks a change up within ``keys.poll_interval_seconds``; nothing needs a restart.
"""

from __future__ import annotations

import json
import time
from typing import Any

import click
from pydantic import ValidationError

from .._exceptions import ConfigError, InvalidRequest, TierrouteError
from .settings import KeySpec


def _loaded(config: str | None) -> Any:
    from ..bootstrap import load

    return load(config, discover=False)


def _store(config: str | None) -> Any:
    from .db import Database
    from .store import KeyStore

    return KeyStore(Database(_loaded(config).settings.ledger))


def _checked(config: str | None, options: dict[str, Any]) -> KeySpec:
    from .settings import check_spec

    spec = _spec(options, update=False)
    catalog = _loaded(config).catalog
    check_spec(spec, catalog.models, catalog.tiers)
    return spec


def _spec(options: dict[str, Any], *, update: bool = False) -> KeySpec:
    raw: dict[str, Any] = {}
    for field in ("name", "owner", "user", "team", "project"):
        if options.get(field) is not None:
            raw[field] = options[field]
    for field in ("models", "tiers"):
        if options.get(field):
            raw[field] = [v for item in options[field] for v in item.split(",") if v]
    if options.get("budget_usd") is not None:
        raw["budgets"] = [{"scope": "caller", "window": options["window"], "usd": options["budget_usd"]}]
    if options.get("rpm") is not None:
        raw["rate_limits"] = [{"scope": "caller", "requests_per_minute": options["rpm"]}]
    if options.get("expires_in_days") is not None:
        raw["expires_at"] = time.time() + options["expires_in_days"] * 86400
    if options.get("limits_json"):
        try:
            raw.update(json.loads(options["limits_json"]))
        except json.JSONDecodeError as exc:
            raise InvalidRequest(f"--json: not valid JSON: {exc}") from None
    if options.get("metadata"):
        raw["metadata"] = dict(item.split("=", 1) for item in options["metadata"])
    try:
        return KeySpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidRequest(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def _spec_options(fn: Any) -> Any:
    for option in reversed((
        click.option("--name"), click.option("--owner"), click.option("--user"), click.option("--team"),
        click.option("--project"),
        click.option("--models", multiple=True, help="allowed model ids (repeat or comma-separate)"),
        click.option("--tiers", multiple=True, help="allowed tiers (repeat or comma-separate)"),
        click.option("--budget-usd", type=float, help="the key's own spend ceiling per --window"),
        click.option("--window", default="day", type=click.Choice(["minute", "hour", "day", "month", "total"])),
        click.option("--rpm", type=int, help="requests per minute for this key"),
        click.option("--expires-in-days", type=float),
        click.option("--metadata", multiple=True, help="KEY=VALUE"),
        click.option("--json", "limits_json", help="fields as JSON, e.g. budgets and rate_limits rules"),
    )):
        fn = option(fn)
    return fn


def _run(fn: Any) -> Any:
    try:
        return fn()
    except (TierrouteError, ConfigError) as exc:
        raise click.ClickException(exc.message) from None


CONFIG = click.option("--config", "-c", default=None, help="Config file (default: $TIERROUTE_CONFIG or ./tierroute.yaml).")


@click.group("keys")
def keys() -> None:
    """Create, list, change, rotate and revoke virtual keys (keys.enabled)."""


@keys.command("create")
@CONFIG
@_spec_options
def create(config: str | None, **options: Any) -> None:
    """Create a key; prints it once (only its hash is stored)."""
    key, secret = _run(lambda: _store(config).create(_checked(config, options), actor="cli"))
    click.echo(json.dumps({**key.public(), "key": secret}, indent=2))
    click.echo("tierroute: store the key now: it cannot be shown again", err=True)


@keys.command("list")
@CONFIG
@click.option("--all", "include_revoked", is_flag=True, help="include revoked keys")
@click.option("--search", default=None)
def list_keys(config: str | None, include_revoked: bool, search: str | None) -> None:
    """List keys (prefix, owner, team, status); never the keys themselves."""
    store = _run(lambda: _store(config))
    after = None
    while True:
        page = store.list(after=after, limit=500, include_revoked=include_revoked, search=search)
        for key in page:
            p = key.public()
            click.echo(f"{p['id']}  {p['prefix']}…  {p['status']:<8} owner={p['owner'] or '-'} team={p['team'] or '-'} "
                       f"name={p['name'] or '-'}")
        if len(page) < 500:
            return
        after = page[-1].id


@keys.command("show")
@CONFIG
@click.argument("key_id")
def show(config: str | None, key_id: str) -> None:
    click.echo(json.dumps(_run(lambda: _store(config).get(key_id)).public(), indent=2))


@keys.command("update")
@CONFIG
@click.argument("key_id")
@_spec_options
def update(config: str | None, key_id: str, **options: Any) -> None:
    """Change the fields given; the others keep their values."""
    key = _run(lambda: _store(config).update(key_id, _checked(config, options), actor="cli"))
    click.echo(json.dumps(key.public(), indent=2))


@keys.command("rotate")
@CONFIG
@click.argument("key_id")
def rotate(config: str | None, key_id: str) -> None:
    """A new secret for the same key; the old one stops working on every replica."""
    key, secret = _run(lambda: _store(config).rotate(key_id, actor="cli"))
    click.echo(json.dumps({**key.public(), "key": secret}, indent=2))


@keys.command("revoke")
@CONFIG
@click.argument("key_id")
def revoke(config: str | None, key_id: str) -> None:
    key = _run(lambda: _store(config).revoke(key_id, actor="cli"))
    click.echo(json.dumps(key.public(), indent=2))
