"""The hashed n-gram featurizer plus a sentence embedding, appended to its dense vector.

Why appended to the dense part: the first stage (one logistic regression per model) then weighs the unit-norm
embedding beside the n-grams, and the second stage (boosted trees over every model's logit plus the dense
features) can use it too, without touching the sparse n-gram path, its idf weighting or the predictors. The
encoder reads the same text the n-grams do (``focus_text``: the final question block, head and tail).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from ..featurizers import HashingFeaturizer, focus_text
from .base import Encoder, EncoderError


@dataclass(frozen=True)
class EmbeddingFeaturizer:
    """``transform`` gives the n-gram featurizer's ``(indices, values, dense)`` with ``dense`` extended by the
    encoder's vector; pass ``embedding`` when it was computed ahead (the gateway does, off its event loop)."""

    hashing: HashingFeaturizer
    encoder: Encoder = field(compare=False)
    KIND: ClassVar[str] = "hashing+embedding"

    @property
    def dim(self) -> int:
        return self.hashing.dim

    @property
    def n_dense(self) -> int:
        return self.hashing.n_dense + (self.encoder.dim or 0)

    @property
    def idf(self) -> np.ndarray | None:
        return self.hashing.idf

    def encoder_text(self, text: str) -> str:
        return focus_text(text, self.hashing.focus, self.hashing.max_chars)

    async def aembed(self, text: str) -> np.ndarray:
        """The embedding of ``text`` without blocking the event loop (what ``transform`` takes as ``embedding``)."""
        return await self.encoder.aencode(self.encoder_text(text))

    def transform(self, text: str, embedding: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        idx, vals, dense = self.hashing.transform(text)
        if embedding is None:
            embedding = self.encoder.encode([self.encoder_text(text)])[0]
        if embedding.shape != (self.encoder.dim,):
            raise EncoderError(f"embedding has shape {embedding.shape}, the router expects ({self.encoder.dim},)")
        return idx, vals, np.concatenate([dense, embedding.astype(np.float32, copy=False)])

    def dense_list(self, text: str) -> list[float]:
        """The structure features alone, for the catalog priors (which never read the embedding)."""
        return self.hashing.dense_list(text)

    def transform_many(self, texts: Sequence[str]) -> tuple[Any, np.ndarray]:
        x, dense = self.hashing.transform_many(list(texts))
        vectors = self.encoder.encode([self.encoder_text(t) for t in texts])
        return x, np.hstack([dense, vectors.astype(np.float32, copy=False)])

    def with_idf(self, x: Any) -> EmbeddingFeaturizer:
        return replace(self, hashing=self.hashing.with_idf(x))

    def config(self) -> dict[str, object]:
        return {"kind": self.KIND, "hashing": self.hashing.config(), "encoder": self.encoder.config()}

    def arrays(self) -> dict[str, np.ndarray]:
        return self.hashing.arrays()
