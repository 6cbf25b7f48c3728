"""Shared state for limits: one :class:`StateStore` interface, an in-memory and a Redis backend."""

from __future__ import annotations

from .._exceptions import StateUnavailable
from .base import Counter, Refusal, StateStore
from .memory import MemoryStore

__all__ = ["Counter", "MemoryStore", "Refusal", "StateStore", "StateUnavailable"]
