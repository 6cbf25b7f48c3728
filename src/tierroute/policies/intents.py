"""Semantic intents: config-defined routes ("code", "extraction", "math", ...) matched by example utterances.

Each route's utterances are featurised once at start-up with the same hashed featurizer the learned router
uses (word and character n-grams, so "refactor this function" is close to "refactor my class"). A prompt's
score for a route is the mean of its top-``TOP_K`` cosine similarities to that route's utterances, which is
robust to one odd example while still rewarding a close match. Below ``threshold`` nothing matches and the
caller falls through to the normal policy: the "no intent matched" path is an explicit ``match=None``.

Classification is one featurisation plus a sparse-dense product, well under a millisecond.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .featurizers import HashingFeaturizer

TOP_K = 2


class IntentRoute(BaseModel):
    """One intent: a name, example utterances, and where matching prompts go (a tier or a model list)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="intent name, shown in x-tierroute-reason")
    utterances: list[str] = Field(min_length=1, description="example prompts of this intent")
    tier: str | None = Field(default=None, description="tier matching prompts route within (or models)")
    models: list[str] | None = Field(default=None, description="models matching prompts route among (or tier)")

    @field_validator("utterances")
    @classmethod
    def _non_blank(cls, value: list[str]) -> list[str]:
        for i, u in enumerate(value):
            if not u.strip():
                raise ValueError(f"utterance {i} is blank")
        return value

    @model_validator(mode="after")
    def _one_target(self) -> IntentRoute:
        if (self.tier is None) == (not self.models):
            raise ValueError(f"intent {self.name!r}: set exactly one of 'tier' or a non-empty 'models' list")
        return self


class IntentSettings(BaseModel):
    """``intents:`` configuration: a similarity threshold in [0, 1] and the routes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: float = Field(0.25, ge=0.0, le=1.0, description="similarity a prompt needs to match an intent")
    routes: list[IntentRoute] = Field(default_factory=list, description="the intents, for model=\"auto\"")

    @model_validator(mode="after")
    def _unique_names(self) -> IntentSettings:
        names = [r.name for r in self.routes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate intent names: {dupes}")
        return self


@dataclass(frozen=True)
class IntentResult:
    """The best route if its score clears the threshold (else ``match`` is None), and every route's score."""

    match: str | None
    scores: Mapping[str, float]
    tier: str | None = None
    models: tuple[str, ...] | None = None
    threshold: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {"match": self.match, "tier": self.tier, "models": list(self.models) if self.models else None,
                "threshold": self.threshold, "scores": {k: round(v, 4) for k, v in self.scores.items()}}


@dataclass(frozen=True)
class IntentClassifier:
    """Built once from settings; ``classify`` is pure and cheap."""

    routes: tuple[IntentRoute, ...]
    threshold: float
    featurizer: HashingFeaturizer
    # (n_utterances, dim) float32 dense bank of unit vectors, and the route index of each row
    bank: np.ndarray
    owner: np.ndarray
    idf: np.ndarray  # (dim,) down-weights n-grams shared by many utterances ("what is the", "please")

    @classmethod
    def from_settings(cls, settings: IntentSettings, featurizer: HashingFeaturizer | None = None) -> IntentClassifier:
        # Intents compare whole short utterances, so no few-shot "focus" and a smaller hash space suffice.
        feat = featurizer or HashingFeaturizer(bits=14, focus="all")
        rows, owner = [], []
        for r_i, route in enumerate(settings.routes):
            for u in route.utterances:
                idx, vals, _ = feat.transform(u)
                row = np.zeros(feat.dim, np.float32)
                row[idx] = vals
                rows.append(row)
                owner.append(r_i)
        bank = np.vstack(rows) if rows else np.zeros((0, feat.dim), np.float32)
        df = np.count_nonzero(bank, axis=0)
        idf = (np.log((bank.shape[0] + 1) / (df + 1)) + 1.0).astype(np.float32)
        bank *= idf
        bank /= np.maximum(np.linalg.norm(bank, axis=1, keepdims=True), 1e-12)
        return cls(tuple(settings.routes), settings.threshold, feat, bank, np.array(owner, dtype=np.int64), idf)

    def classify(self, text: str) -> IntentResult:
        if not self.routes:
            return IntentResult(None, {}, threshold=self.threshold)
        idx, vals, _ = self.featurizer.transform(text)
        weighted = vals * self.idf[idx]
        weighted /= max(float(np.linalg.norm(weighted)), 1e-12)
        sims = self.bank[:, idx] @ weighted
        scores: dict[str, float] = {}
        for r_i, route in enumerate(self.routes):
            own = np.sort(sims[self.owner == r_i])[::-1][:TOP_K]
            scores[route.name] = float(own.mean()) if own.size else 0.0
        best = max(scores, key=lambda n: scores[n])
        if scores[best] < self.threshold:
            return IntentResult(None, scores, threshold=self.threshold)
        route = self.routes[[r.name for r in self.routes].index(best)]
        return IntentResult(best, scores, route.tier, tuple(route.models) if route.models else None, self.threshold)
