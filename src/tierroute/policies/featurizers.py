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
examples of a few-shot prompt (measured in ``docs/research/routing-quality-log.md``).
"""

from __future__ import annotations

import math
import re
import sys
from array import array
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any, Literal

import numpy as np

from .kernels import load_kernels

Focus = Literal["all", "last"]

_MUL = np.uint64(0x100000001B3)  # FNV-64 prime: odd, so invertible modulo 2**64
_MIX = np.uint64(0x9E3779B97F4A7C15)
_SALT_WORD = np.uint64(0x51ED270B)
_SALT_BIGRAM = np.uint64(0x2545F491)
_SALT_CHAR = np.uint64(0x6C8E9CF5)
_CHAR_SALTS = tuple(np.uint64(0x6C8E9CF5 * k) for k in range(33))  # _SALT_CHAR * k, per n-gram length k
_PLUS_ONE = np.arange(1, 257, dtype=np.uint64)  # byte -> byte + 1, as one lookup
# Where the top 16 bits of each uint64 sit in its uint16 view: for 2**16 buckets or fewer, folding a hash into a
# bucket reads them in place rather than shifting and casting the whole array.
_TOP16 = 3 if sys.byteorder == "little" else 0
# Word bytes of the lower-cased text: a-z, 0-9 and every byte of a non-ASCII character.
_WORD_BYTE = np.array([48 <= b <= 57 or 97 <= b <= 122 or b >= 128 for b in range(256)], dtype=np.int8)
# Routing texts longer than this are featurised from their head and tail halves only: difficulty signals sit
# in the instruction and the final question, and the cap makes featurising O(1) in prompt length (a 2,000-token
# prompt costs what a 500-token one does). Stored per artifact, so changing the default never changes a trained
# router's features.
DEFAULT_MAX_CHARS = 2048
# Upper bound on max_chars (UTF-8 can take 4 bytes a character): sizes the precomputed hash power tables.
_MAX_MAX_CHARS = 16_384
_UPPER = bytes(range(65, 91))
# "A." / "(b)" answer options at the start of a line, counted on "\n" + text: a search for the newline literal
# finds line starts much faster than a multi-line "^" tried at every position, and the lookahead consumes only
# the newline, so each line start is counted once, as "(?m)^\(?[A-Da-d][.)]\s" counts it.
_CHOICE_LINE = re.compile(r"\n(?=\(?[A-Da-d][.)]\s)")

DENSE_NAMES: tuple[str, ...] = (
    "log_chars", "log_words", "newlines_per_kchar", "digit_share", "upper_share", "punct_share",
    "questions", "math_markers", "code_markers", "choice_options", "mean_word_len",
    # How much arithmetic a question carries (multi-step word problems separate strong and weak models).
    "numbers", "distinct_numbers", "longest_number", "decimals", "percent_dollar", "sentences",
    "bias",
)
_N_DENSE = len(DENSE_NAMES)
_DISTINCT_SCAN = 64  # kernels/_kernels.c counts distinct numbers among as many
# The structure features whose counting costs most; ``dense_list(text, only=...)`` skips them when none is asked for.
_COSTLY = frozenset(DENSE_NAMES.index(name) for name in (
    "upper_share", "punct_share", "choice_options", "mean_word_len", "numbers", "distinct_numbers", "longest_number",
    "decimals", "sentences"))
# Numbers are digit runs with inner "." or "," (2.5, 3,000); a decimal point sits between two digits.
_NUMBER = re.compile(rb"\d+(?:[.,]\d+)*")
# A sentence end: ".", "?" or "!" before a space or a newline (two such pairs never overlap).
_SENTENCE_END = re.compile(rb"[.?!][ \n]")
_DIGITS = bytes(range(48, 58))
_LETTERS = bytes(range(97, 123))
_PUNCT = bytes(range(33, 48)) + bytes(range(58, 65))


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


def focus_text(text: str, focus: Focus, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """The part of ``text`` the featurizer reads (see module docstring): at most ``max_chars`` + 1 characters."""
    return _bounded(text, focus, max_chars)[0]


def _bounded(text: str, focus: Focus, max_chars: int) -> tuple[str, int]:
    """The focused text cut to head + tail, and the focused length before the cut (a difficulty signal)."""
    if focus == "last":
        # Only the end can hold the last block; never scan (or copy) a huge prompt whole.
        text = _last_block(text[-4 * max_chars:])
    full = len(text)
    if full > max_chars:
        half = max_chars // 2
        text = text[:half] + "\n" + text[-half:]
    return text, full


def _last_block(text: str) -> str:
    stripped = text.rstrip()
    cut = stripped.rfind("\n\n")
    tail = stripped[cut + 2:] if cut >= 0 else stripped
    # A one-line tail ("Answer:") carries no question: keep the block before it too.
    if len(tail) < 40 and cut > 0:
        prev = stripped.rfind("\n\n", 0, cut)
        tail = stripped[prev + 2 if prev >= 0 else 0:]
    return tail


def _dedup(buckets: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Unique buckets (sorted) and their counts.

    Up to 2**16 buckets, a 16-bit sort (``buckets`` may already be uint16) beats both a comparison sort of
    int64 and a bincount over every bucket; above that, bincount's cost is the table size, sort's the number of
    hashes. Method calls rather than the ``np.diff`` / ``np.flatnonzero`` wrappers: for a short prompt the
    per-call overhead is most of the cost.
    """
    size = buckets.size
    if not size:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if bits <= 16:
        ordered = np.sort(buckets.astype(np.uint16, copy=False))
        bounds = np.empty(size + 1, dtype=bool)  # True where a run of equal buckets starts, and at the end
        bounds[0] = bounds[size] = True
        np.not_equal(ordered[1:], ordered[:-1], out=bounds[1:size])
        starts = bounds.nonzero()[0]
        return ordered.take(starts[:-1]).astype(np.int64), starts[1:] - starts[:-1]
    if size * 16 < (1 << bits):
        return np.unique(buckets, return_counts=True)
    counts = np.bincount(buckets, minlength=1 << bits)
    idx = np.flatnonzero(counts)
    return idx, counts[idx]


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
    max_chars: int = DEFAULT_MAX_CHARS
    # Per-bucket inverse document frequency fitted on training prompts (``with_idf``); None: plain log counts.
    idf: np.ndarray | None = field(default=None, repr=False, compare=False)
    _pow: np.ndarray = field(init=False, repr=False, compare=False)
    _inv_pow: np.ndarray = field(init=False, repr=False, compare=False)
    _pow_before: np.ndarray = field(init=False, repr=False, compare=False)  # [i] = _pow[i - 1]: one gather per word
    _salts: tuple[np.uint64, ...] = field(init=False, repr=False, compare=False)  # per entry of char_ngrams
    _log1p: np.ndarray = field(init=False, repr=False, compare=False)  # float32 log1p of every possible count
    _kernels: ModuleType | None = field(init=False, repr=False, compare=False)  # compiled path; None: numpy

    def __post_init__(self) -> None:
        if not 8 <= self.bits <= 24:
            raise ValueError(f"bits must be between 8 and 24, got {self.bits}")
        if not 64 <= self.max_chars <= _MAX_MAX_CHARS:
            raise ValueError(f"max_chars must be between 64 and {_MAX_MAX_CHARS}, got {self.max_chars}")
        if self.idf is not None and self.idf.shape != (self.dim,):
            raise ValueError(f"idf has shape {self.idf.shape}, expected ({self.dim},)")
        object.__setattr__(self, "char_ngrams", tuple(int(k) for k in self.char_ngrams))
        if self.idf is not None:
            object.__setattr__(self, "idf", np.ascontiguousarray(self.idf, dtype=np.float32))
        n = 4 * self.max_chars + 8
        powers = _powers(int(_MUL), n)
        object.__setattr__(self, "_pow", powers)
        object.__setattr__(self, "_inv_pow", _powers(_inverse_mod_2_64(int(_MUL)), n))
        object.__setattr__(self, "_pow_before", np.concatenate((np.zeros(1, np.uint64), powers[:-1])))
        with np.errstate(over="ignore"):
            salts = tuple(_CHAR_SALTS[k] if k < len(_CHAR_SALTS) else _SALT_CHAR * np.uint64(k) for k in self.char_ngrams)
        object.__setattr__(self, "_salts", salts)
        # A text has at most n bytes (the power tables' length), so no bucket counts more than n per n-gram kind.
        most = n * (len(self.char_ngrams) + 2)
        object.__setattr__(self, "_log1p", np.log1p(np.arange(most + 1, dtype=np.float32)))
        object.__setattr__(self, "_kernels", load_kernels())

    @property
    def dim(self) -> int:
        return 1 << self.bits

    @property
    def n_dense(self) -> int:
        return len(DENSE_NAMES)

    def config(self) -> dict[str, object]:
        """What an artifact stores so that loading rebuilds the identical featurizer."""
        return {"kind": "hashing", "bits": self.bits, "char_ngrams": list(self.char_ngrams),
                "word_bigrams": self.word_bigrams, "focus": self.focus, "max_chars": self.max_chars}

    def arrays(self) -> dict[str, np.ndarray]:
        """Fitted arrays an artifact stores beside ``config()``."""
        return {} if self.idf is None else {"idf": self.idf.astype(np.float16)}

    def with_idf(self, x: Any) -> HashingFeaturizer:
        """A copy weighting buckets by smoothed idf fitted on ``x`` (this featurizer's CSR output for a corpus).

        ``log((n + 1) / (df + 1)) + 1``: rare n-grams (a subject's vocabulary) count more than ubiquitous ones
        ("the", "answer"). Unseen buckets get the largest weight, as in scikit-learn's smoothed idf.
        """
        df = np.bincount(x.indices, minlength=self.dim)
        idf = (np.log((x.shape[0] + 1.0) / (df + 1.0)) + 1.0).astype(np.float32)
        return replace(self, idf=idf)

    @classmethod
    def from_config(cls, cfg: dict[str, object], arrays: dict[str, np.ndarray] | None = None) -> HashingFeaturizer:
        if cfg.get("kind", "hashing") != "hashing":
            raise ValueError(f"unknown featurizer kind {cfg.get('kind')!r}")
        idf = (arrays or {}).get("idf")
        return cls(idf=None if idf is None else np.asarray(idf, np.float32),  # type: ignore[arg-type]
                   bits=int(cfg.get("bits", 15)), char_ngrams=tuple(int(n) for n in cfg.get("char_ngrams", (3, 5))),  # type: ignore[union-attr]
                   word_bigrams=bool(cfg.get("word_bigrams", True)), focus=cfg.get("focus", "last"),  # type: ignore[arg-type]
                   max_chars=int(cfg.get("max_chars", _MAX_MAX_CHARS)))  # type: ignore[call-overload]

    def kernel_settings(self) -> tuple[Any, ...]:
        """What the compiled kernels need to hash like this featurizer: (log1p table, idf, bits, ngrams, bigrams)."""
        return self._log1p, self.idf, self.bits, self.char_ngrams, self.word_bigrams

    def bounded(self, text: str) -> tuple[str, int]:
        """The part of ``text`` this featurizer reads, and the focused length before the head/tail cut."""
        return _bounded(text, self.focus, self.max_chars)

    def _hashes(self, data: np.ndarray) -> np.ndarray:
        """All n-gram hashes of a lower-cased byte array (uint64, before folding into buckets), in one buffer.

        uint64 array arithmetic wraps silently (only numpy scalars warn), which is the modulus we want. Each
        kind is written in place into its slice of one array: for a short prompt the cost is the number of
        numpy calls, not the arithmetic.
        """
        n = data.size
        # prefix[i] = sum_{j<i} (data[j] + 1) * MUL^-j, so hash(s, e) = MUL^(e-1) * (prefix[e] - prefix[s])
        prefix = np.zeros(n + 1, dtype=np.uint64)
        running = prefix[1:]
        np.multiply(_PLUS_ONE.take(data), self._inv_pow[:n], out=running)
        np.add.accumulate(running, out=running)
        # 1 inside a word (a-z, 0-9, any non-ASCII byte), padded with 0 at both ends: changes mark word edges.
        padded = np.zeros(n + 2, dtype=np.int8)
        _WORD_BYTE.take(data, out=padded[1:-1])
        edges = (padded[1:] != padded[:-1]).nonzero()[0]
        words = edges.size // 2
        sizes = [n - k + 1 if n >= k else 0 for k in self.char_ngrams]
        bigrams = words - 1 if self.word_bigrams and words > 1 else 0
        out = np.empty(sum(sizes) + words + bigrams, dtype=np.uint64)
        at = 0
        for k, size, salt in zip(self.char_ngrams, sizes, self._salts):
            if size:
                h = out[at:at + size]
                np.subtract(prefix[k:], prefix[:-k], out=h)
                np.multiply(h, self._pow[k - 1:n], out=h)
                np.bitwise_xor(h, salt, out=h)
                at += size
        if words:
            starts, ends = edges[0::2], edges[1::2]
            wh = out[at:at + words]
            np.subtract(prefix.take(ends), prefix.take(starts), out=wh)
            np.multiply(wh, self._pow_before.take(ends), out=wh)
            if bigrams:
                bg = out[at + words:]
                np.multiply(wh[:-1], _MIX, out=bg)
                np.add(bg, wh[1:], out=bg)
                np.bitwise_xor(bg, _SALT_BIGRAM, out=bg)
            np.bitwise_xor(wh, _SALT_WORD, out=wh)
        return out

    def _bucket(self, h: np.ndarray) -> np.ndarray:
        """Fold hashes into ``2**bits`` buckets: the top bits of ``h * MIX``. Overwrites ``h``.

        Up to 16 bits the result is a uint16 view of the products' top halves (``_dedup`` sorts 16-bit keys),
        above that int64.
        """
        mixed = np.multiply(h, _MIX, out=h)
        if self.bits <= 16:
            top = mixed.view(np.uint16)[_TOP16::4]
            return top if self.bits == 16 else top >> np.uint16(16 - self.bits)
        return (mixed >> np.uint64(64 - self.bits)).astype(np.int64)

    def transform(self, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Featurise one routing text: ``(indices int64, values float32, dense float32)``."""
        text, full = _bounded(text, self.focus, self.max_chars)
        raw = text.lower().encode("utf-8", "ignore")
        if self._kernels is not None:
            # Two compiled calls instead of ~30 numpy ones and a few dozen Python-level counts; same results.
            # Room for every hash: each char n-gram kind, the words and the bigrams yield at most len(raw) each.
            room = min(self.dim, len(raw) * (len(self.char_ngrams) + 2) + 1)
            idx, vals, dense = np.empty(room, np.int64), np.empty(room, np.float32), np.empty(_N_DENSE, np.float32)
            n = self._kernels.hash_features(raw, idx, vals, *self.kernel_settings())
            self._kernels.dense_features(text, raw, full, dense)
            return idx[:n], vals[:n], dense
        idx, counts = _dedup(self._bucket(self._hashes(np.frombuffer(raw, dtype=np.uint8))), self.bits)
        vals = self._log1p.take(counts)  # == np.log1p(counts.astype(np.float32)), looked up
        if self.idf is not None:
            vals *= self.idf.take(idx)
        square = float(vals.dot(vals))
        if square > 0:
            # sqrt in float64 then rounded to float32 (as numpy rounds a Python float divisor of a float32 array)
            # is exactly the float32 sqrt: double rounding is innocuous for square roots.
            vals /= math.sqrt(square)
        return idx, vals, np.array(_dense_values(text, raw, full), dtype=np.float32)

    def dense(self, text: str) -> np.ndarray:
        """The structure features alone (all the untrained router reads): no n-gram hashing."""
        return np.array(self.dense_list(text), dtype=np.float32)

    def dense_list(self, text: str, only: Collection[int] | None = None) -> list[float]:
        """``dense(text)`` as plain floats (each rounded to float32 exactly as ``dense`` stores it).

        For the untrained router's hot path: a few products over 18 numbers cost less without numpy. With
        ``only`` (indices into ``DENSE_NAMES``), the costliest features (regexes, letter counts) are left out
        unless one of them is asked for: those not asked for may be NaN.
        """
        text, full = _bounded(text, self.focus, self.max_chars)
        if self._kernels is not None:  # every feature, in one compiled pass: cheaper than the cheap Python subset
            dense = np.empty(_N_DENSE, np.float32)
            self._kernels.dense_features(text, text.lower().encode("utf-8", "ignore"), full, dense)
            return dense.tolist()  # type: ignore[no-any-return]
        costly = only is None or not _COSTLY.isdisjoint(only)
        # The cheap features count digits, spaces and punctuation only: for ASCII text lower-casing (a copy) changes
        # none of them, nor the length.
        raw = text.encode("ascii") if not costly and text.isascii() else text.lower().encode("utf-8", "ignore")
        return array("f", _dense_values(text, raw, full, costly)).tolist()

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


def _dense_values(text: str, raw: bytes, full_chars: int, costly: bool = True) -> list[float]:
    """Structure features (``DENSE_NAMES``), each scaled to roughly [0, 1] so one regulariser suits them all.

    ``raw`` is the (bounded) lower-cased text as UTF-8. Counted with ``bytes.count`` / ``bytes.translate`` and
    a few regexes: a few dozen C calls, no per-call numpy overhead, which is what a short prompt's cost is made
    of. The two length features are scaled back up to the focused text's full length. Without ``costly`` the
    features in ``_COSTLY`` are NaN.
    """
    size = len(raw)
    n = max(size, 1)
    scale = max(full_chars, 1) / max(len(text), 1)
    spaces, newlines = raw.count(b" "), raw.count(b"\n")
    digits = size - len(raw.translate(None, _DIGITS))
    code_marks = size - len(raw.translate(None, b"{};")) + 4 * raw.count(b"```")
    words = spaces + newlines + 1
    if costly:
        head = text[:300].encode("ascii", "ignore")
        upper = (len(head) - len(head.translate(None, _UPPER))) / max(min(len(text), 300), 1)
        punct = (size - len(raw.translate(None, _PUNCT))) / n
        choices = min(len(_CHOICE_LINE.findall("\n" + text[-1500:])), 8) / 8.0
        word_len = (size - len(raw.translate(None, _LETTERS))) / words / 10.0
        # Numbers need digits: a prompt without any skips the regex. Every "." inside a number sits between two
        # digits (see _NUMBER), so the numbers' dots are exactly the decimal points.
        numbers = _NUMBER.findall(raw) if digits else []
        number_values = (
            min(len(numbers), 20) / 20.0,
            # the feature saturates at 20, so the first numbers decide it and a number-dense prompt stays cheap
            min(len(set(numbers[:_DISTINCT_SCAN])), 20) / 20.0,
            min(max(map(len, numbers)), 10) / 10.0 if numbers else 0.0,
            min(b"".join(numbers).count(b".") if numbers else 0, 5) / 5.0,
        )
        sentences = min(len(_SENTENCE_END.findall(raw)) + 1, 20) / 20.0
    else:
        upper = punct = choices = word_len = sentences = math.nan
        number_values = (math.nan,) * 4
    return [
        math.log1p(n * scale) / 10.0,
        math.log1p(words * scale) / 8.0,
        min(newlines * 1000.0 / n, 50.0) / 50.0,
        digits / n,
        upper,
        punct,
        min(raw.count(b"?"), 10) / 10.0,
        min(size - len(raw.translate(None, b"=+^*/<>")), 50) / 50.0,
        min(code_marks, 20) / 20.0,
        choices,
        word_len,
        *number_values,
        min(size - len(raw.translate(None, b"%$")), 5) / 5.0,
        sentences,
        1.0,
    ]
