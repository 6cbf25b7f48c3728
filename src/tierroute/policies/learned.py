"""The learned cost-quality policy and the factory the gateway builds it through.

``LearnedPolicy`` featurises the routing text, predicts each candidate's quality (a trained predictor for
models it was trained on, the catalog prior bent by prompt difficulty for the rest), prices each candidate
with ``expected_cost_usd``, and ranks them with the configured :class:`Objective`. Without a trained artifact
the same policy runs on priors alone, so routing works out of the box.

Everything the decision used is returned in ``Decision.details`` so ``tierroute route`` can explain it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .._exceptions import ConfigError
from ..types import Decision, ModelSpec, Ranked, RequestFeatures, StateSnapshot
from .artifact import ArtifactError, load_artifact
from .base import expected_cost_usd
from .encoders.featurizer import EmbeddingFeaturizer
from .featurizers import HashingFeaturizer
from .kernels import ENV_SWITCH, load_kernels
from .objective import Objective, mix_choice, rank, rank_mix
from .predictors.base import QualityPredictor
from .predictors.guarded import GuardedPredictor
from .predictors.linear import LinearPredictor
from .predictors.prior import PriorPredictor

# Out-of-box objective: pay for a stronger model when it is predicted to be worth 0.3 quality points per
# "price of the dearest candidate" (see docs/routing-quality.md, "Default router").
DEFAULT_OBJECTIVE = Objective("lambda", 0.3)
TOP_IN_DETAILS = 3
_NO_EMBEDDING: tuple[float, ...] = ()  # RequestFeatures.embedding when the encoder failed: route on the priors
log = logging.getLogger("tierroute.policies")


class EncoderOptions(BaseModel):
    """``router.options.encoder``: where this deployment reaches an endpoint encoder the artifact was trained with."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(None, description="embeddings endpoint base URL; absent: the one used in training")
    api_key: str | None = Field(None, description="endpoint key, e.g. ${EMBEDDINGS_API_KEY}")
    timeout_seconds: float | None = Field(None, gt=0, description="per-request limit (default 5 s)")


class LearnedOptions(BaseModel):
    """``router.options`` for the learned policy. At most one of lambda / margin / quality_target."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    artifact: str | None = Field(None, description="trained router file (.npz); absent: untrained default router")
    lambda_: float | None = Field(None, alias="lambda", ge=0,
                                  description="quality points per relative cost; with none of lambda, margin, "
                                              "quality_target set: the artifact's trained operating point, or 0.3 "
                                              "untrained")
    margin: float | None = Field(None, ge=0, le=1, description="cheapest model within this of the best prediction")
    quality_target: float | None = Field(None, ge=0, le=1, description="cheapest model predicted at least this good")
    model_map: dict[str, str] = Field(default_factory=dict, description="artifact model name -> catalog id")
    encoder: EncoderOptions | None = Field(None, description="endpoint encoder settings (artifact trained with one)")
    prices: Literal["recorded", "catalog"] | None = Field(
        None, description="how the trained router prices the models it knows: recorded (default for a router trained "
                          "on priced data) = each model's mean recorded cost per request, what `tierroute train` "
                          "calibrated and `eval` measured with; catalog = catalog price x (prompt tokens + expected "
                          "completion tokens)")

    @model_validator(mode="after")
    def _one_objective(self) -> LearnedOptions:
        set_ = [n for n in ("lambda_", "margin", "quality_target") if getattr(self, n) is not None]
        if len(set_) > 1:
            raise ValueError(f"set at most one of lambda, margin, quality_target (got {', '.join(set_)})")
        return self

    def objective(self) -> Objective | None:
        if self.lambda_ is not None:
            return Objective("lambda", self.lambda_)
        if self.margin is not None:
            return Objective("margin", self.margin)
        if self.quality_target is not None:
            return Objective("target", 1.0 - self.quality_target)
        return None


@dataclass(frozen=True)
class LearnedPolicy:
    """Maximise predicted quality against expected cost; pure given (features, candidates, state)."""

    featurizer: HashingFeaturizer | EmbeddingFeaturizer
    objective: Objective
    predictor: QualityPredictor | None = None
    # catalog id -> column of the predictor's output
    columns: Mapping[str, int] = field(default_factory=dict)
    prior: PriorPredictor = field(default_factory=PriorPredictor)
    # catalog id -> USD per request the objective weighs (a trained router's recorded mean costs); other
    # candidates are priced from the catalog. ``cost_scale``: the USD a lambda weighs as one unit of cost.
    prices: Mapping[str, float] = field(default_factory=dict)
    cost_scale: float | None = None
    name: str = "learned"
    _prior_features: Callable[[str], list[float]] = field(init=False, repr=False, compare=False)
    _plan: Callable[[str], tuple[list[float], list[float]]] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The priors read a handful of structure features: counting only those skips the regexes and letter
        # counts, most of what the untrained router costs on a long prompt.
        hashing = self.featurizer.hashing if isinstance(self.featurizer, EmbeddingFeaturizer) else self.featurizer
        object.__setattr__(self, "_prior_features", partial(hashing.dense_list, only=self.prior.reads))
        object.__setattr__(self, "_plan", _compiled_plan(self.featurizer, self.predictor))

    def decide(self, features: RequestFeatures, candidates: Sequence[ModelSpec], state: StateSnapshot) -> Decision:
        # Plain Python floats throughout: a decision ranks a handful of candidates, where numpy's per-call
        # overhead would cost more than the arithmetic. A trained predictor runs in the compiled kernels
        # (``_plan``) when they are built, otherwise on numpy's sparse dot products.
        columns = self.columns
        unknown = [m.id for m in candidates if m.id not in columns]
        use_predictor = self.predictor is not None and len(unknown) < len(candidates)
        embedding = features.embedding
        encoder_down = embedding is not None and len(embedding) == 0
        predicted: list[float] | None = None
        if use_predictor and not encoder_down:
            assert self.predictor is not None
            if self._plan is not None:  # text -> predictions and structure features, one compiled call
                predicted, dense_values = self._plan(features.text)
            else:
                idx, vals, dense = (self.featurizer.transform(features.text) if embedding is None
                                    else self.featurizer.transform(features.text, embedding))  # type: ignore[call-arg]
                predicted, dense_values = self.predictor.predict(idx, vals, dense).tolist(), dense.tolist()
            difficulty = self.prior.difficulty(dense_values)
        else:  # priors only read the structure features: skip n-gram hashing entirely
            difficulty = self.prior.difficulty(self._prior_features(features.text))
        kept_off = False
        if predicted is not None and not unknown:  # the trained router knows every candidate: no priors needed
            quality = [predicted[columns[m.id]] for m in candidates]
        else:
            quality = self.prior.predict_priors([m.quality for m in candidates], difficulty)
            if predicted is not None:
                for i, m in enumerate(candidates):
                    col = columns.get(m.id)
                    if col is not None:
                        quality[i] = predicted[col]
            # A model known only by an estimated prior (a discovered local one) never takes a hard prompt
            # because it is free; the trained router's own predictions are trusted as they are.
            kept_off = self.prior.keep_off_hard(
                quality, [m.quality_estimated and m.id not in columns for m in candidates], features.text, difficulty)
        cost = [expected_cost_usd(features, m) for m in candidates]
        objective = self.objective.under_pressure(state.budget_pressure)
        shifted = objective is not self.objective and objective != self.objective
        if objective.mode == "mix":
            order, utility = rank_mix([m.id for m in candidates], quality, mix_choice(objective, features.text),
                                      objective.models)
        else:
            prices = self.prices
            weighed = [prices.get(m.id, c) for m, c in zip(candidates, cost)] if prices else cost
            order, utility = rank(quality, weighed, objective, self.cost_scale)
        ranked = tuple([Ranked(candidates[i], cost[i], quality[i], utility[i]) for i in order])
        encoder_failed = encoder_down and use_predictor
        reason = self._reason(ranked[0], objective, shifted, state, [] if encoder_failed else unknown, len(candidates))
        if encoder_failed:
            reason += "; the encoder failed, used catalog priors"
        if kept_off:
            reason += f"; difficulty {difficulty:.2f}: models with estimated priors kept off"
        return Decision(ranked=ranked, reason=reason,
                        policy=self.name,
                        details=_Details(ranked, objective, shifted, difficulty, unknown, self.predictor is not None))

    @property
    def prepare(self) -> Callable[[RequestFeatures], Awaitable[RequestFeatures]] | None:
        """What the router awaits before :meth:`decide`: the prompt's embedding, computed without blocking the
        event loop. None without an encoder, so the router skips the step at no cost."""
        return self._embed if isinstance(self.featurizer, EmbeddingFeaturizer) else None

    async def aclose(self) -> None:
        """Release the encoder (an endpoint's connection, the local model's worker thread), if there is one."""
        if isinstance(self.featurizer, EmbeddingFeaturizer):
            await self.featurizer.encoder.aclose()

    async def _embed(self, features: RequestFeatures) -> RequestFeatures:
        assert isinstance(self.featurizer, EmbeddingFeaturizer)
        try:
            embedding: Any = await self.featurizer.aembed(features.text)
        except Exception as exc:  # noqa: BLE001 - an optional input must not fail the request: fall back to priors
            log.warning("encoder failed, routing this request on catalog priors: %s", getattr(exc, "message", exc))
            embedding = _NO_EMBEDDING
        return replace(features, embedding=embedding)

    def _reason(self, best: Ranked, objective: Objective, shifted: bool, state: StateSnapshot, unknown: list[str],
                n: int) -> str:
        if objective.mode == "mix":
            how = f"{objective.describe()} (routing did not beat the best mix of single models in training)"
        elif objective.mode == "lambda":
            how = f"best quality - {objective.value:.3g} x relative cost"
        elif objective.mode == "margin":
            how = f"cheapest within {objective.value:.3g} of best predicted quality"
        else:
            how = f"cheapest predicted >= {1 - objective.value:.3g} quality"
        reason = f"{best.model.id}: {how} (predicted {best.predicted_quality:.2f}, ${best.expected_cost_usd:.5f})"
        if shifted:
            reason += f"; budget pressure {state.budget_pressure:.0%} shifted toward cheaper models"
        if self.predictor is None:
            reason += "; untrained default: catalog quality priors x prompt difficulty"
        elif len(unknown) == n:
            reason += "; no candidate is in the trained router; used catalog priors"
        elif unknown:
            reason += f"; {len(unknown)} of {n} candidates not in the trained router; used catalog priors for them"
        return reason


class _Details(Mapping[str, Any]):
    """``Decision.details`` of a learned decision, built on first read.

    The gateway routes far more requests than anyone explains, so the dict (rounding, the "top" list) is only
    built when ``tierroute route``, a log line or a test reads it. Reads like the plain dict it builds.
    """

    __slots__ = ("_args", "_built")

    def __init__(self, ranked: tuple[Ranked, ...], objective: Objective, shifted: bool, difficulty: float,
                 unknown: list[str], trained: bool) -> None:
        self._args = (ranked, objective, shifted, difficulty, unknown, trained)
        self._built: dict[str, Any] | None = None

    def _dict(self) -> dict[str, Any]:
        if self._built is None:
            ranked, objective, shifted, difficulty, unknown, trained = self._args
            self._built = {
                "objective": {"mode": objective.mode, "value": objective.value},
                "difficulty": round(difficulty, 4),
                "trained": trained,
                "budget_pressure_applied": shifted,
                "unknown_to_router": unknown,
                "top": [{"model": r.model.id, "predicted_quality": round(r.predicted_quality or 0.0, 4),
                         "expected_cost_usd": r.expected_cost_usd, "score": round(r.score or 0.0, 4)}
                        for r in ranked[:TOP_IN_DETAILS]],
            }
        return self._built

    def __getitem__(self, key: str) -> Any:
        return self._dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict())

    def __len__(self) -> int:
        return len(self._dict())

    def __repr__(self) -> str:
        return repr(self._dict())


def _compiled_plan(featurizer: HashingFeaturizer | EmbeddingFeaturizer,
                   predictor: QualityPredictor | None) -> Callable[[str], tuple[list[float], list[float]]] | None:
    """Routing text -> (each model's predicted quality, the structure features) in one call of the compiled
    kernels, with no numpy array in between: what a trained router with n-gram features spends most of its
    decision on. None when the kernels are not built, without a predictor, or with a sentence encoder."""
    kernels = load_kernels()
    scorer_args = getattr(predictor, "scorer_args", None)
    if kernels is None or scorer_args is None or not isinstance(featurizer, HashingFeaturizer):
        return None
    scorer = kernels.Scorer(*scorer_args(), featurizer=featurizer.kernel_settings())
    bounded = featurizer.bounded

    def plan(text: str) -> tuple[list[float], list[float]]:
        cut, full = bounded(text)
        return scorer.predict_text(cut, cut.lower().encode("utf-8", "ignore"), full)  # type: ignore[no-any-return]

    return plan


def default_policy() -> LearnedPolicy:
    """The out-of-box router: no training data, catalog priors and prompt difficulty."""
    return LearnedPolicy(featurizer=HashingFeaturizer(), objective=DEFAULT_OBJECTIVE)


def _config_error(exc: ValidationError) -> ConfigError:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]).replace("lambda_", "lambda")
    field_name = f"router.options.{where}" if where else "router.options"
    return ConfigError(f"{field_name}: {first['msg']}", param=field_name)


def build_learned_policy(options: Mapping[str, Any], models: Sequence[ModelSpec]) -> LearnedPolicy:
    """Validate ``router.options`` and build the policy once at start-up (reads the artifact file here).

    ``models`` is the catalog, used to check ``model_map`` targets and to map artifact model names that are
    already catalog ids. Raises :class:`ConfigError` naming ``router.options.<field>``.
    """
    try:
        opts = LearnedOptions.model_validate(dict(options))
    except ValidationError as exc:
        raise _config_error(exc) from None
    catalog_ids = {m.id for m in models}
    for source, target in opts.model_map.items():
        if target not in catalog_ids:
            raise ConfigError(f"router.options.model_map.{source}: {target!r} is not a model in the catalog",
                              param=f"router.options.model_map.{source}")
    if opts.artifact is None:
        if opts.encoder is not None:
            raise ConfigError("router.options.encoder: an encoder needs an artifact trained with one",
                              param="router.options.encoder")
        if opts.prices is not None:
            raise ConfigError("router.options.prices: only a trained router (artifact) records prices; the untrained "
                              "router prices from the catalog", param="router.options.prices")
        return LearnedPolicy(featurizer=HashingFeaturizer(), objective=opts.objective() or DEFAULT_OBJECTIVE)
    try:
        artifact = load_artifact(opts.artifact, encoder_options=opts.encoder.model_dump(exclude_none=True)
                                 if opts.encoder is not None else None)
    except ArtifactError as exc:
        raise ConfigError(f"router.options.artifact: {exc}", param="router.options.artifact") from None
    unknown_sources = sorted(set(opts.model_map) - set(artifact.models))
    if unknown_sources:
        raise ConfigError(f"router.options.model_map: {unknown_sources} not in the router's models {list(artifact.models)}",
                          param="router.options.model_map")
    columns = {opts.model_map.get(name, name): j for j, name in enumerate(artifact.models)}
    columns = {cid: j for cid, j in columns.items() if cid in catalog_ids}
    predictor = artifact.predictor
    used = sorted(set(columns.values()))
    guarded_linear = isinstance(predictor, GuardedPredictor) and isinstance(predictor.inner, LinearPredictor)
    if (guarded_linear or isinstance(predictor, LinearPredictor)) and len(used) < len(predictor.models):
        # Predict only the models the catalog can route to (a stacked predictor's trees read every logit).
        predictor = predictor.select(used)
        columns = {cid: used.index(j) for cid, j in columns.items()}
    if load_kernels() is None:
        log.warning("the trained router runs on numpy, about 4x slower a decision than with tierroute's compiled "
                    "kernels (installed without a C compiler, or %s=0); see README, 'Compiled kernels'", ENV_SWITCH)
    objective = opts.objective() or _served_objective(artifact.objective, opts.model_map, catalog_ids)
    prices, scale = _recorded_prices(opts, artifact.mean_costs, catalog_ids)
    return LearnedPolicy(featurizer=artifact.featurizer, objective=objective, predictor=predictor, columns=columns,
                         prices=prices, cost_scale=scale)


def _served_objective(objective: Objective, model_map: Mapping[str, str], catalog_ids: set[str]) -> Objective:
    """A ``mix`` objective with the models it serves as catalog ids (the others need no translation)."""
    if objective.mode != "mix":
        return objective
    served = tuple(model_map.get(name, name) for name in objective.models)
    missing = [name for name, cid in zip(objective.models, served) if cid not in catalog_ids]
    if missing:
        raise ConfigError(f"router.options.model_map: the router serves {missing} without routing (routing did not "
                          "beat the best mix of single models in training), and the catalog has no such model: map "
                          "it with model_map, or set lambda or margin to route", param="router.options.model_map")
    return replace(objective, models=served)


def _recorded_prices(opts: LearnedOptions, mean_costs: Mapping[str, float],
                     catalog_ids: set[str]) -> tuple[dict[str, float], float | None]:
    """Catalog id -> recorded mean cost per request, and the dearest recorded cost as the lambda scale: the prices
    `tierroute train` and `eval` weighed, so the gateway decides as evaluation replays. Empty with ``prices:
    catalog`` or a router trained on unpriced data."""
    if opts.prices == "catalog" or (opts.prices is None and not mean_costs):
        return {}, None
    if not mean_costs:
        raise ConfigError("router.options.prices: recorded, but the router file records no costs (trained on "
                          "unpriced data); use catalog", param="router.options.prices")
    prices = {opts.model_map.get(name, name): float(cost) for name, cost in mean_costs.items()}
    return {cid: cost for cid, cost in prices.items() if cid in catalog_ids}, max(float(c) for c in mean_costs.values())
