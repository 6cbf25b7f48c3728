"""Keep configured secrets out of what the gateway relays and logs.

Upstreams echo keys back ("Incorrect API key provided: sk-proj-...", "invalid x-api-key: sk-ant-api03…Xw"),
and anything in an upstream's answer may be relayed to a client or written to a log. A :class:`Redactor`
holds the secrets (provider keys and secret-looking header values, gateway keys, the encoder key, passwords in
the ledger and limits-store URLs) and replaces, in a text:

* every verbatim occurrence of a secret;
* every word containing a run of :data:`GRAM` or more consecutive characters of a secret (a key cut short,
  or glued to other text as in ``key=sk-...``);
* every masked echo: a word whose visible parts are the secret's first and/or last characters around a mask
  (``*``, ``...``, ``…``, ``•``) with at least :data:`MIN_VISIBLE` of them visible (``sk-abc...wxyz``,
  ``****wxyz``).

Each becomes :data:`MASK`. Secrets shorter than :data:`MIN_SECRET_CHARS` are ignored: matching them would
mangle ordinary words. Full text redaction costs a few microseconds a word, so it runs on error messages and
log records only; successful answers get the cheap verbatim check of :meth:`Redactor.bytes`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ._exceptions import TierrouteError
    from .config import ProviderSettings, Settings

MASK = "[redacted]"
MIN_SECRET_CHARS = 8
GRAM = 8
MIN_VISIBLE = 4
# Header names whose values are credentials (matched as substrings of the lower-cased name).
SECRET_HEADER_MARKERS = ("auth", "key", "token", "secret", "cookie", "signature", "password")

_WORD = re.compile(r"[^\s\"'`,;:()\[\]{}<>|]+")
_MASK_RUN = re.compile(r"\*+|\.{2,}|…+|•+")


def _credential_parts(value: str) -> list[str]:
    """A header value and, for ``Bearer xyz`` / ``Basic xyz``, the credential after the scheme."""
    parts = [value]
    scheme, _, rest = value.partition(" ")
    if rest and scheme.isalpha():
        parts.append(rest.strip())
    return parts


def provider_secrets(settings: ProviderSettings) -> list[str]:
    secrets = [settings.api_key] if settings.api_key else []
    for name, value in settings.headers.items():
        if any(marker in name.lower() for marker in SECRET_HEADER_MARKERS):
            secrets += _credential_parts(value)
    return secrets


def settings_secrets(settings: Settings) -> list[str]:
    """Every secret a configuration holds."""
    secrets: list[str] = list(settings.server.api_keys)
    if settings.server.admin_key:
        secrets.append(settings.server.admin_key)
    for provider in settings.providers.values():
        secrets += provider_secrets(provider)
    encoder = settings.router.options.get("encoder")
    if isinstance(encoder, Mapping) and isinstance(encoder.get("api_key"), str):
        secrets.append(encoder["api_key"])
    for url in (settings.ledger.dsn, settings.limits.state.url):
        password = urlsplit(url).password if url else None
        if password:
            secrets.append(password)
    return secrets


class Redactor:
    """Replaces configured secrets, whole or partly echoed, with :data:`MASK`. Immutable once built."""

    __slots__ = ("_secrets", "_needles", "_grams")

    def __init__(self, secrets: Iterable[str | None]) -> None:
        kept = {s for s in secrets if s and len(s) >= MIN_SECRET_CHARS}
        self._secrets = tuple(sorted(kept, key=len, reverse=True))  # longest first: no half-replaced overlaps
        self._needles = tuple((s.encode(), MASK.encode()) for s in self._secrets)
        self._grams = frozenset(s[i:i + GRAM] for s in self._secrets for i in range(len(s) - GRAM + 1))

    @classmethod
    def from_settings(cls, settings: Settings) -> Redactor:
        return cls(settings_secrets(settings))

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def text(self, text: str) -> str:
        if not self._secrets or not text:
            return text
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return _WORD.sub(self._word, text)

    def _word(self, match: re.Match[str]) -> str:
        word = match.group()
        if len(word) < MIN_VISIBLE:
            return word
        grams = self._grams
        for i in range(len(word) - GRAM + 1):
            if word[i:i + GRAM] in grams:
                return MASK
        if _MASK_RUN.search(word) is not None and self._masked_echo(word):
            return MASK
        return word

    def _masked_echo(self, word: str) -> bool:
        pieces = _MASK_RUN.split(word)
        left, right = pieces[0], pieces[-1]
        if right.endswith(".") and len(pieces) > 1:
            right = right[:-1]  # the end of a sentence, not part of the echo
        if len(left) + len(right) < MIN_VISIBLE:
            return False
        return any(secret.startswith(left) and secret.endswith(right) for secret in self._secrets)

    def bytes(self, raw: bytes) -> bytes:
        """Verbatim secrets replaced in a body about to be relayed: one substring search per secret."""
        for needle, mask in self._needles:
            if needle in raw:
                raw = raw.replace(needle, mask)
        return raw

    def json(self, value: Any) -> Any:
        """Every string in a decoded JSON document redacted (keys and values)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self.json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.json(v) for v in value]
        return value

    def error(self, error: TierrouteError) -> TierrouteError:
        """Redact an error's message in place (what ``to_dict`` and ``str`` show) and return it."""
        if self._secrets:
            redacted = self.text(error.message)
            if redacted != error.message:
                error.message = redacted
                error.args = (redacted, *error.args[1:])
        return error


class RedactingFilter(logging.Filter):
    """A handler filter that redacts each record's message, arguments and traceback before it is written."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        redact = self.redactor.text
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string is the handler's to report, unredacted args aside
            message = str(record.msg)
        record.msg, record.args = redact(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_log_redaction(redactor: Redactor, logger_names: Iterable[str] = ("", "tierroute", "uvicorn",
                                                                               "uvicorn.error")) -> Callable[[], None]:
    """Attach a :class:`RedactingFilter` to the handlers of ``logger_names`` (``""`` is the root logger) and to
    ``logging.lastResort``, which prints records when no handler is configured. Returns the undo.

    Filters go on handlers, not loggers: a logger's filters do not see records from its child loggers, while a
    handler sees every record that reaches it."""
    if not redactor:
        return lambda: None
    log_filter = RedactingFilter(redactor)
    handlers: list[logging.Handler] = []
    for name in logger_names:
        handlers += logging.getLogger(name).handlers
    if logging.lastResort is not None:
        handlers.append(logging.lastResort)
    unique = list({id(h): h for h in handlers}.values())
    for handler in unique:
        handler.addFilter(log_filter)

    def undo() -> None:
        for handler in unique:
            handler.removeFilter(log_filter)

    return undo
