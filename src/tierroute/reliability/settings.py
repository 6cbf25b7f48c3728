"""Settings for retries, fallbacks, health and balancing (``reliability:`` in the config)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ReliabilitySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
