"""Turn a prompt into a sparse feature vector fast enough for the hot path.

Routing must cost far less than the call it routes, so the default featurizer is vectorised numpy with no
Python loop over tokens: the text becomes a byte array, word and character n-grams are hashed with a
polynomial hash computed from prefix sums (uint64 arithmetic wraps, which is exactly the modulus we want),
and the hashes are folded into ``2**bits`` buckets. The hash is seeded by constants, never by Python's
per-process ``hash()``, so a trained artifact means the same thing in every process.

Besides the hashed n-grams, a handful of dense "structure" features (length, digits, code and maths markers,
question count) carry difficulty signals that n-grams alone see poorly.

``focus`` decides which part of the routing text is featurised: ``"all"`` keeps it whole; ``"last"`` keeps
only the final block after the last blank line that still holds the question, which drops the worked
examples of a few-shot prompt (measured in ``docs/routing-quality.md``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Focus = Literal["all", "last"]

_MUL = np.uint64(0x100000001B3)  # FNV-64 prime: odd, so invertible modulo 2**64
_MIX = np.uint64(0x9E3779B97F4A7C15)
_SALT_WORD = np.uint64(0x51ED270B)
_SALT_BIGRAM = np.uint64(0x2545F491)
_SALT_CHAR = np.uint64(0x6C8E9CF5)
# Prompts longer than this many bytes are featurised from their head and tail only: difficulty signals sit
# in the instruction and the final question, and the cap bounds the worst-case latency.
MAX_BYTES = 12_000
_CHOICE = re.compile(r"(?m)^\(?[A-Da-d][.)]\s")

DENSE_NAMES: tuple[str, ...] = (
    "log_chars", "log_words", "newlines_per_kchar", "digit_share", "upper_share", "punct_share",
    "questions", "math_markers", "code_markers", "choice_options", "mean_word_len", "bias",
)


def _inverse_mod_2_64(a: int) -> int:
    """Multiplicative inverse of an odd ``a`` modulo 2**64 (Newton iteration)."""
    x = a
    for _ in range(6):
        x = (x * (2 - a * x)) % (1 << 64)
    return x


def _powers(base: int, n: int) -> np.ndarray:
    out = np.empty(n, dtype=np.uint64)
    out[0] = 1
    with np.errstate(over="ignore"):
        out[1:] = np.uint64(base)
        np.cumprod(out, out=out)
    return out


def focus_text(text: str, focus: Focus) -> str:
    """The part of ``text`` the featurizer reads (see module docstring)."""
    if focus == "all":
        return text
    stripped = text.rstrip()
    cut = stripped.rfind("\n\n")
    tail = stripped[cut + 2:] if cut >= 0 else stripped
    # A one-line tail ("Answer:") carries no question: keep the block before it too.
    if len(tail) < 40 and cut > 0:
        prev = stripped.rfind("\n\n", 0, cut)
        tail = stripped[prev + 2 if prev >= 0 else 0:]
    return tail


@dataclass(frozen=True)
class HashingFeaturizer:
    """Hashed word unigrams+bigrams and character n-grams, plus dense structure features.

    ``transform`` returns ``(indices, values, dense)``: a sparse L2-normalised vector over ``2**bits`` buckets
    (unique indices) and a small dense vector (``DENSE_NAMES``). Cost is linear in the prompt bytes with a
    small constant: tens of microseconds for a short prompt, a few hundred for 2,000 tokens.
    """

    bits: int = 15
    char_ngrams: tuple[int, ...] = (3, 5)
    word_bigrams: bool = True
    focus: Focus = "last"
    _pow: np.ndarray = field(init=False, repr=False, compare=False)
    _inv_pow: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 8 <= self.bits <= 24:
            raise ValueError(f"bits must be between 8 and 24, got {self.bits}")
        object.__setattr__(self, "_pow", _powers(int(_MUL), MAX_BYTES + 2))
        object.__setattr__(self, "_inv_pow", _powers(_inverse_mod_2_64(int(_MUL)), MAX_BYTES + 2))

    @property
    def dim(self) -> int:
        return 1 << self.bits

    @property
    def n_dense(self) -> int:
        return len(DENSE_NAMES)

    def config(self) -> dict[str, object]:
        """What an artifact stores so that loading rebuilds the identical featurizer."""
        return {"kind": "hashing", "bits": self.bits, "char_ngrams": list(self.char_ngrams),
                "word_bigrams": self.word_bigrams, "focus": self.focus}

    @classmethod
    def from_config(cls, cfg: dict[str, object]) -> HashingFeaturizer:
        if cfg.get("kind", "hashing") != "hashing":
            raise ValueError(f"unknown featurizer kind {cfg.get('kind')!r}")
        return cls(bits=int(cfg.get("bits", 15)), char_ngrams=tuple(int(n) for n in cfg.get("char_ngrams", (3, 5))),  # type: ignore[union-attr]
                   word_bigrams=bool(cfg.get("word_bigrams", True)), focus=cfg.get("focus", "last"))  # type: ignore[arg-type]

    def _hashes(self, data: np.ndarray) -> np.ndarray:
        """All n-gram hashes of a lower-cased byte array (uint64, before folding into buckets)."""
        n = data.size
        parts: list[np.ndarray] = []
        with np.errstate(over="ignore"):
            b = data.astype(np.uint64) + np.uint64(1)
            # prefix[i] = sum_{j<i} b[j] * MUL^-j, so hash(s, e) = MUL^(e-1) * (prefix[e] - prefix[s])
            prefix = np.zeros(n + 1, dtype=np.uint64)
            np.cumsum(b * self._inv_pow[:n], out=prefix[1:])
            for k in self.char_ngrams:
                if n >= k:
                    h = (prefix[k:] - prefix[:-k]) * self._pow[k - 1:n]
                    parts.append(h ^ (_SALT_CHAR * np.uint64(k)))
            word = (data >= 97) & (data <= 122) | (data >= 48) & (data <= 57) | (data >= 128)
            edges = np.flatnonzero(np.diff(np.concatenate(([False], word, [False])).astype(np.int8)))
            starts, ends = edges[0::2], edges[1::2]
            if starts.size:
                wh = (prefix[ends] - prefix[starts]) * self._pow[ends - 1]
                parts.append(wh ^ _SALT_WORD)
                if self.word_bigrams and wh.size > 1:
                    parts.append((wh[:-1] * _MIX + wh[1:]) ^ _SALT_BIGRAM)
        if not parts:
            return np.zeros(0, dtype=np.uint64)
        return np.concatenate(parts)

    def _bucket(self, h: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            mixed = h * _MIX
        return (mixed >> np.uint64(64 - self.bits)).astype(np.int64)

    def transform(self, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Featurise one routing text: ``(indices int64, values float32, dense float32)``."""
        text = focus_text(text, self.focus)
        raw = text.lower().encode("utf-8", "ignore")
        if len(raw) > MAX_BYTES:
            half = MAX_BYTES // 2
            raw = raw[:half] + b"\n" + raw[-half + 1:]
        data = np.frombuffer(raw, dtype=np.uint8)
        buckets = self._bucket(self._hashes(data))
        if buckets.size * 16 < self.dim:  # short prompt: sorting a few hashes beats scanning every bucket
            idx, counts = np.unique(buckets, return_counts=True)
        else:
            counts = np.bincount(buckets, minlength=self.dim)
            idx = np.flatnonzero(counts)
            counts = counts[idx]
        vals = np.log1p(counts.astype(np.float32))
        norm = float(np.sqrt(np.dot(vals, vals)))
        if norm > 0:
            vals /= norm
        return idx, vals, self.dense(text, data)

    def dense(self, text: str, data: np.ndarray) -> np.ndarray:
        """Structure features, each scaled to roughly [0, 1] so one regulariser suits them all.

        Counted on the lower-cased bytes with one lookup table, so the cost stays flat in prompt length.
        """
        n = max(int(data.size), 1)
        counts = np.bincount(data, minlength=256)
        digits = int(counts[48:58].sum())
        letters = int(counts[97:123].sum())
        spaces, newlines = int(counts[32]), int(counts[10])
        punct = int(counts[33:48].sum() + counts[58:65].sum())
        math_marks = int(sum(counts[ord(c)] for c in "=+^*/<>"))
        code_marks = int(counts[ord("{")] + counts[ord("}")] + counts[ord(";")]) + 4 * text.count("```")
        upper = sum(1 for c in text[:300] if c.isupper()) / max(min(len(text), 300), 1)
        words = spaces + newlines + 1
        return np.array([
            math.log1p(n) / 10.0,
            math.log1p(words) / 8.0,
            min(newlines * 1000.0 / n, 50.0) / 50.0,
            digits / n,
            upper,
            punct / n,
            min(int(counts[ord("?")]), 10) / 10.0,
            min(math_marks, 50) / 50.0,
            min(code_marks, 20) / 20.0,
            min(len(_CHOICE.findall(text[-1500:])), 8) / 8.0,
            letters / words / 10.0,
            1.0,
        ], dtype=np.float32)

    def transform_many(self, texts: list[str]) -> tuple[object, np.ndarray]:
        """Featurise a corpus for training: ``(scipy CSR matrix n x dim, dense n x n_dense)``.

        Imports scipy lazily: it comes with the ``train`` extra and inference never needs it.
        """
        from scipy import sparse

        indptr = [0]
        all_idx: list[np.ndarray] = []
        all_val: list[np.ndarray] = []
        dense = np.empty((len(texts), self.n_dense), dtype=np.float32)
        for i, text in enumerate(texts):
            idx, val, d = self.transform(text)
            all_idx.append(idx)
            all_val.append(val)
            dense[i] = d
            indptr.append(indptr[-1] + idx.size)
        x = sparse.csr_matrix(
            (np.concatenate(all_val) if all_val else np.zeros(0, np.float32),
             np.concatenate(all_idx) if all_idx else np.zeros(0, np.int64), np.array(indptr)),
            shape=(len(texts), self.dim), dtype=np.float32,
        )
        return x, dense
