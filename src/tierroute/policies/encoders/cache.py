"""An on-disk embedding cache for training and evaluation, so a second run never re-encodes a corpus.

One SQLite file; each vector is keyed by sha256 of (the encoder's identity, the text): its kind, model and,
for an endpoint, base URL. Cross-validation asks for the same prompts fold after fold and run after run; with
the cache, each prompt is encoded once (MMLU's 14,037 prompts take ~6 minutes with the local encoder). Misses
are encoded and written in chunks, so an interrupted run keeps what it finished. The gateway never uses it.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .base import Encoder

CHUNK = 512
_LOOKUP = 500  # keys per SELECT ... IN (...), below SQLite's variable limit


class CachedEncoder:
    """Wraps an encoder: ``encode`` reads and fills the cache; everything else is the inner encoder's."""

    def __init__(self, inner: Encoder, path: str | Path, *, progress: Callable[[str], None] | None = None) -> None:
        self.inner = inner
        self.path = Path(path)
        self._progress = progress
        identity = {k: v for k, v in inner.config().items() if k != "dim"}  # an endpoint learns dim later
        self._salt = repr(sorted(identity.items())).encode("utf-8") + b"\0"

    @property
    def kind(self) -> str:
        return self.inner.kind

    @property
    def model(self) -> str:
        return self.inner.model

    @property
    def dim(self) -> int | None:
        return self.inner.dim

    def config(self) -> dict[str, Any]:
        return self.inner.config()

    async def aencode(self, text: str) -> np.ndarray:
        return await self.inner.aencode(text)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        keys = [hashlib.sha256(self._salt + t.encode("utf-8", "surrogatepass")).digest() for t in texts]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(self.path, timeout=60) as db:
            db.execute("CREATE TABLE IF NOT EXISTS embedding (key BLOB PRIMARY KEY, vector BLOB NOT NULL)")
            found: dict[bytes, bytes] = {}
            unique = list(dict.fromkeys(keys))
            for i in range(0, len(unique), _LOOKUP):
                part = unique[i:i + _LOOKUP]
                found.update(db.execute(f"SELECT key, vector FROM embedding WHERE key IN ({','.join('?' * len(part))})",
                                        part).fetchall())
            todo = list({k: t for k, t in zip(keys, texts) if k not in found}.items())
            if todo and self._progress:
                self._progress(f"encoding {len(todo)} prompts with {self.inner.kind} {self.inner.model} "
                               f"({len(unique) - len(todo)} cached in {self.path})")
            for i in range(0, len(todo), CHUNK):
                chunk = todo[i:i + CHUNK]
                vectors = self.inner.encode([t for _, t in chunk])
                rows = [(k, v.astype(np.float32).tobytes()) for (k, _), v in zip(chunk, vectors)]
                db.executemany("INSERT OR REPLACE INTO embedding VALUES (?, ?)", rows)
                db.commit()
                found.update(rows)
                if self._progress and len(todo) > CHUNK:
                    self._progress(f"  encoded {min(i + CHUNK, len(todo))}/{len(todo)}")
        db.close()
        if not keys:
            return np.zeros((0, self.dim or 0), np.float32)
        return np.stack([np.frombuffer(found[k], dtype=np.float32) for k in keys])
