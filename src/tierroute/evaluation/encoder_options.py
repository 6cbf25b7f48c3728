"""The ``--encoder ...`` options ``tierroute train`` and ``tierroute eval`` share: they become one ``encoder``
argument (None, or an encoder behind the on-disk embedding cache)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..policies.encoders import CachedEncoder, Encoder, EncoderError, build_encoder

DEFAULT_CACHE = Path.home() / ".cache" / "tierroute" / "embeddings.sqlite"

_OPTIONS = (
    click.option("--encoder", "encoder_kind", type=click.Choice(["local", "endpoint"]), default=None,
                 help="Add a sentence embedding to the features: local MiniLM (the encoder extra) or an "
                      "OpenAI-compatible /v1/embeddings endpoint."),
    click.option("--encoder-url", help="Endpoint base URL, e.g. http://127.0.0.1:11434/v1 (with --encoder endpoint)."),
    click.option("--encoder-model", help="Endpoint embedding model name (with --encoder endpoint)."),
    click.option("--encoder-api-key", envvar="TIERROUTE_ENCODER_API_KEY", show_envvar=True,
                 help="Endpoint API key (better from the environment variable)."),
    click.option("--encoder-cache", type=click.Path(dir_okay=False), default=str(DEFAULT_CACHE),
                 show_default="~/.cache/tierroute/embeddings.sqlite",
                 help="SQLite file caching embeddings by text and model across runs."),
)


def encoder_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the options to a click command function; it receives ``encoder: Encoder | None`` instead."""

    @functools.wraps(command)
    def wrapper(*args: Any, encoder_kind: str | None, encoder_url: str | None, encoder_model: str | None,
                encoder_api_key: str | None, encoder_cache: str, **kwargs: Any) -> Any:
        encoder = None
        if encoder_kind is not None:
            encoder = _build(encoder_kind, encoder_url, encoder_model, encoder_api_key, encoder_cache)
        elif encoder_url or encoder_model:
            raise click.UsageError("--encoder-url and --encoder-model need --encoder endpoint")
        return command(*args, encoder=encoder, **kwargs)

    for option in reversed(_OPTIONS):
        wrapper = option(wrapper)
    return wrapper


def _build(kind: str, url: str | None, model: str | None, api_key: str | None, cache: str) -> Encoder:
    if kind == "endpoint" and not (url and model):
        raise click.UsageError("--encoder endpoint needs --encoder-url and --encoder-model")
    if kind == "local" and url:
        raise click.UsageError("--encoder-url is for --encoder endpoint")
    config: dict[str, Any] = {"kind": kind} if kind == "local" else {"kind": kind, "model": model}
    if kind == "local" and model:
        config["model"] = model
    try:
        inner = build_encoder(config, **({"base_url": url, "api_key": api_key} if kind == "endpoint" else {}))
    except EncoderError as exc:
        raise click.ClickException(exc.message) from None
    return CachedEncoder(inner, cache, progress=lambda msg: click.echo(f"... {msg}", err=True))
