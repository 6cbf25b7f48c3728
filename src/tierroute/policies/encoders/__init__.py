"""Optional sentence encoders for the learned router (see ``base.py``): local MiniLM or an embeddings endpoint."""

from __future__ import annotations

from .base import Encoder, EncoderError, build_encoder, unit_rows
from .cache import CachedEncoder

__all__ = ["CachedEncoder", "Encoder", "EncoderError", "build_encoder", "unit_rows"]
