"""Settings for virtual keys (``keys:``) and what one key carries."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..budgets.settings import BudgetRule, RateLimitRule

DEFAULT_POLL_INTERVAL_SECONDS = 1.0


class KeysSettings(BaseModel):
    """Virtual keys kept in the ledger's database, managed at run time through the admin API or ``tierroute keys``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=False, description="accept virtual keys (stored hashed in the ledger's database) "
                                                     "besides server.api_keys; needs ledger.backend sqlite or "
                                                     "postgres")
    poll_interval_seconds: float = Field(default=DEFAULT_POLL_INTERVAL_SECONDS, gt=0, le=60,
                                         description="how often each replica looks for key changes; a created, "
                                                     "updated or revoked key takes effect everywhere within this")


class KeySpec(BaseModel):
    """What an admin sets on a key (create and update). Unset fields keep their value on update."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    owner: str | None = Field(default=None, max_length=200)
    user: str | None = Field(default=None, max_length=200)
    team: str | None = Field(default=None, max_length=200)
    project: str | None = Field(default=None, max_length=200)
    models: list[str] | None = None
    tiers: list[str] | None = None
    budgets: list[BudgetRule] | None = None
    rate_limits: list[RateLimitRule] | None = None
    expires_at: float | None = None
    metadata: dict[str, Any] | None = None


def check_spec(spec: KeySpec, models: object, tiers: object) -> None:
    """Refuse model ids and tiers the catalog does not have: a typo would silently lock the key out."""
    from .._exceptions import InvalidRequest

    for field, names, known in (("models", spec.models, models), ("tiers", spec.tiers, tiers)):
        unknown = sorted(set(names or ()) - set(known))  # type: ignore[call-overload]
        if unknown:
            raise InvalidRequest(f"{field}: unknown {field[:-1]} {', '.join(map(repr, unknown))}; known: "
                                 f"{', '.join(sorted(known))}", param=field)  # type: ignore[call-overload]
