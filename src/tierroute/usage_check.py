"""Sanity bounds on the token counts a provider reports, before anything is charged or recorded.

A provider's ``usage`` is trusted for billing, so one absurd figure (``prompt_tokens: 1e30``, a negative
count) would otherwise charge $1e24 to a budget, overflow the ledger's integer columns and lose the whole
batch, or make the Prometheus counter raise. Counts are clamped to what the model could have used and the
row is marked *suspect* with the reported figures, so nobody's bill silently changes.

No real request uses more tokens than the model's context window (prompt and completion share it), so a
count up to ``SLACK`` times the window is taken as reported (catalog windows can be stale); beyond that it
is clamped to the window: the most a real request could have cost.
"""

from __future__ import annotations

from .types import ModelSpec, Usage

SLACK = 2
EMBEDDING_INPUTS = 2048


def _checked(name: str, value: object, ceiling: int, notes: list[str]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        notes.append(f"{name} {value!r} is not an integer count; recorded as 0")
        return 0
    if value < 0:
        notes.append(f"{name} {value} is negative; recorded as 0")
        return 0
    if value > ceiling * SLACK:
        notes.append(f"{name} {value:.3g} exceeds {SLACK}x the context window; clamped to {ceiling}")
        return ceiling
    return value


def checked_usage(usage: Usage, model: ModelSpec) -> tuple[Usage, str | None]:
    """``(usage to charge and record, why it is suspect or None)``. Costs nothing for plausible usage."""
    prompt, completion = usage.prompt_tokens, usage.completion_tokens
    # An embeddings request carries up to EMBEDDING_INPUTS inputs, each up to the model's window.
    ceiling = max(model.context_window, 1) * (EMBEDDING_INPUTS if model.mode == "embedding" else 1)
    limit = ceiling * SLACK
    if (type(prompt) is int and type(completion) is int  # noqa: E721 - bool is not a count
            and 0 <= prompt <= limit and 0 <= completion <= limit):
        return usage, None
    notes: list[str] = []
    prompt = _checked("prompt_tokens", prompt, ceiling, notes)
    completion = _checked("completion_tokens", completion, ceiling, notes)
    return (Usage(prompt, completion, estimated=usage.estimated, cached_tokens=min(usage.cached_tokens, prompt),
                  cache_write_tokens=min(usage.cache_write_tokens, prompt)),
            f"suspect usage from {model.provider}: " + "; ".join(notes))
