"""Trained-router files: one ``.npz`` holding numeric arrays plus a JSON metadata blob. Never pickle.

Router files get shared and downloaded, so loading one must not execute code: ``numpy.load`` runs with
``allow_pickle=False`` and the metadata is plain JSON stored as bytes. Loading is numpy-only and takes
milliseconds, so a gateway can start with a trained router without the ``train`` extra.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .encoders import EncoderError, build_encoder
from .encoders.featurizer import EmbeddingFeaturizer
from .featurizers import HashingFeaturizer
from .objective import Objective
from .predictors.base import QualityPredictor, predictor_from_arrays
from .predictors.guarded import GuardedPredictor

FORMAT = "tierroute-router"
FORMAT_VERSION = 2
_META_KEY = "__meta_json__"


class ArtifactError(ValueError):
    """A router file is missing, not a tierroute router, or from an incompatible version."""


@dataclass(frozen=True)
class RouterArtifact:
    """Everything a trained router needs at inference, plus where it came from."""

    featurizer: HashingFeaturizer | EmbeddingFeaturizer
    predictor: QualityPredictor
    objective: Objective
    mean_costs: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    heldout: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A familiarity guard compares prompts with its prototypes before idf weighting: it needs the featurizer's idf.
        if isinstance(self.predictor, GuardedPredictor):
            object.__setattr__(self, "predictor", self.predictor.with_idf(self.featurizer.idf))

    @property
    def models(self) -> tuple[str, ...]:
        return self.predictor.models


def save_artifact(artifact: RouterArtifact, path: str | Path) -> int:
    """Write ``artifact`` to ``path`` (compressed npz); returns the file size in bytes."""
    pconfig, arrays = artifact.predictor.to_arrays()
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "featurizer": artifact.featurizer.config(),
        "predictor": pconfig,
        "objective": {"mode": artifact.objective.mode, "value": artifact.objective.value,
                      **({"models": list(artifact.objective.models)} if artifact.objective.models else {})},
        "mean_costs": artifact.mean_costs,
        "provenance": artifact.provenance,
        "heldout": artifact.heldout,
    }
    payload = {f"p.{k}": v for k, v in arrays.items()}
    payload.update({f"f.{k}": v for k, v in artifact.featurizer.arrays().items()})
    payload[_META_KEY] = np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **payload)
    data = buf.getvalue()
    Path(path).write_bytes(data)
    return len(data)


def load_artifact(path: str | Path, *, encoder_options: dict[str, Any] | None = None) -> RouterArtifact:
    """Read a router file written by :func:`save_artifact`; raises :class:`ArtifactError` with the reason.

    A router trained with a sentence encoder gets it rebuilt here (the local model loads now, not on the first
    request); ``encoder_options`` (``base_url``, ``api_key``, ``timeout_seconds``) point an endpoint encoder at
    this deployment's server.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            if _META_KEY not in npz.files:
                raise ArtifactError(f"{path}: not a tierroute router file (no metadata)")
            meta = json.loads(npz[_META_KEY].tobytes().decode("utf-8"))
            arrays = {k[2:]: npz[k] for k in npz.files if k.startswith("p.")}
            farrays = {k[2:]: npz[k] for k in npz.files if k.startswith("f.")}
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        if isinstance(exc, ArtifactError):
            raise
        raise ArtifactError(f"{path}: cannot read router file ({exc})") from None
    if meta.get("format") != FORMAT:
        raise ArtifactError(f"{path}: not a tierroute router file (format={meta.get('format')!r})")
    if meta.get("version") != FORMAT_VERSION:
        raise ArtifactError(f"{path}: router file version {meta.get('version')} is not supported (want {FORMAT_VERSION})")
    try:
        featurizer = _featurizer(meta["featurizer"], farrays, encoder_options or {})
        predictor = predictor_from_arrays(meta["predictor"], arrays)
        objective = _objective(meta["objective"], predictor.models)
    except EncoderError as exc:
        raise ArtifactError(f"{path}: {exc.message}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{path}: malformed router file ({exc})") from None
    return RouterArtifact(featurizer, predictor, objective, dict(meta.get("mean_costs") or {}),
                          dict(meta.get("provenance") or {}), dict(meta.get("heldout") or {}))


def _objective(config: dict[str, Any], models: tuple[str, ...]) -> Objective:
    mode, served = config["mode"], tuple(str(m) for m in config.get("models") or ())
    if mode not in ("lambda", "margin", "target", "mix"):
        raise ValueError(f"unknown objective mode {mode!r}")
    if mode == "mix" and (not 1 <= len(served) <= 2 or not set(served) <= set(models)):
        raise ValueError(f"objective serves {list(served)}, not one or two of the router's models")
    return Objective(mode=mode, value=float(config["value"]), models=served)


def _featurizer(config: dict[str, Any], arrays: dict[str, np.ndarray],
                encoder_options: dict[str, Any]) -> HashingFeaturizer | EmbeddingFeaturizer:
    if config.get("kind") == EmbeddingFeaturizer.KIND:
        return EmbeddingFeaturizer(HashingFeaturizer.from_config(config["hashing"], arrays),
                                   build_encoder(config["encoder"], **encoder_options))
    if encoder_options:
        raise EncoderError("encoder options were given, but this router was trained without an encoder")
    return HashingFeaturizer.from_config(config, arrays)
