"""The final answer of a model's reply, normalised so two models' answers can be compared for agreement.

Written against the recorded replies of the RouterBench ARC and GSM8K files: multiple-choice replies are
mostly a bare letter ("D", "D\n", "D) ..."), sometimes a sentence ("The answer is B"), sometimes a refusal
("I do not ..."); GSM8K replies end with "#### 540" (Mixtral almost always, GPT-4 in one of eight) or state the
number in the last sentence. An answer that cannot be extracted is ``None``, which never agrees with anything:
a refusal or a rambling reply escalates.
"""

from __future__ import annotations

import re
from typing import Literal

AnswerKind = Literal["auto", "choice", "number", "text"]
ANSWER_KINDS: tuple[str, ...] = ("auto", "choice", "number", "text")

# A bare option letter at the start: "D", "(D)", "D)", "D.", "D: ...", "D\n...". Not "A bird ..." nor "I do not":
# a letter followed by a space is a word, and "I" is never an option (options run A-H).
_LEADING_CHOICE = re.compile(r"^\s*\(?([A-H])\)?(?:$|[.):,\n])")
_STATED_CHOICE = re.compile(r"(?:answer|option|choice)\s*(?:is|:)?\s*\(?\**([A-H])\b\)?", re.IGNORECASE)
_FINAL_NUMBER = re.compile(r"####\s*\$?\s*(-?[\d,]*\.?\d+)")
_STATED_NUMBER = re.compile(r"answer\s*(?:is|:)\s*\$?\s*(-?[\d,]*\.?\d+)", re.IGNORECASE)
_ANY_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_SPACE = re.compile(r"\s+")


def choice(text: str) -> str | None:
    """The option letter the reply chose, or None."""
    m = _LEADING_CHOICE.match(text) or _STATED_CHOICE.search(text)
    return m.group(1).upper() if m else None


def _number_form(raw: str) -> str | None:
    raw = raw.replace(",", "")
    try:
        value = float(raw)
    except ValueError:
        return None
    # "540", "540.0" and "540.00" are one answer.
    return str(int(value)) if value.is_integer() else repr(value)


def number(text: str) -> str | None:
    """The final number: after "####", else after "answer is", else the last number in the reply."""
    m = _FINAL_NUMBER.search(text) or _STATED_NUMBER.search(text)
    if m:
        return _number_form(m.group(1))
    found = _ANY_NUMBER.findall(text)
    return _number_form(found[-1]) if found else None


def final_number(text: str) -> str | None:
    """Only a number the reply marked as final ("#### N" or "the answer is N"): a single cheap model's reply
    without one did not finish its solution."""
    m = _FINAL_NUMBER.search(text) or _STATED_NUMBER.search(text)
    return _number_form(m.group(1)) if m else None


def normalised_text(text: str) -> str | None:
    """Lower case, single spaces, no trailing punctuation; None when nothing is left."""
    out = _SPACE.sub(" ", text).strip().strip(".!").lower()
    return out or None


def extract(text: str | None, kind: str = "auto") -> str | None:
    """The comparable answer of ``text`` under ``kind``. ``auto`` tags the result with the kind it found
    ("choice:D", "number:540", "text:..."), so a letter never agrees with a number."""
    if text is None:
        return None
    if kind == "choice":
        return choice(text)
    if kind == "number":
        return number(text)
    if kind == "text":
        return normalised_text(text)
    if kind != "auto":
        raise ValueError(f"unknown answer kind {kind!r}; one of {ANSWER_KINDS}")
    stripped = text.strip()
    leading = _LEADING_CHOICE.match(stripped)
    if leading:
        return "choice:" + leading.group(1)
    if _FINAL_NUMBER.search(text):
        return f"number:{number(text)}"
    letter = _STATED_CHOICE.search(text)
    if letter:
        return "choice:" + letter.group(1).upper()
    if _ANY_NUMBER.search(text):
        return f"number:{number(text)}"
    norm = normalised_text(text)
    return None if norm is None else "text:" + norm
