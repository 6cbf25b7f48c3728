"""Settings for budgets, rate limits, runaway protection and the shared state store (``limits:``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class LimitsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
