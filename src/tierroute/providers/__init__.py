"""Providers: one module per wire format behind the :class:`Provider` interface."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from ..config import ProviderSettings
from .anthropic import AnthropicProvider
from .base import Completion, HTTPProvider, Provider
from .openai import OpenAIProvider

WIRE_FORMATS: Mapping[str, Callable[[str, ProviderSettings], Provider]] = MappingProxyType({
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
})


def build_provider(name: str, settings: ProviderSettings) -> Provider:
    return WIRE_FORMATS[settings.kind](name, settings)


__all__ = ["WIRE_FORMATS", "AnthropicProvider", "Completion", "HTTPProvider", "OpenAIProvider", "Provider", "build_provider"]
