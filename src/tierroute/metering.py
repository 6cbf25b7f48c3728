"""What one answer used: the server's usage when it reports one, else counted from what it sent.

Some OpenAI-compatible servers ignore ``stream_options.include_usage`` or send no ``usage`` at all; the
answer is still recorded and charged, with figures counted by the model's tokenizer (``tokens.py``) and the
chat template's own tokens, capped at ``max_tokens``, and marked ``estimated`` in the ledger.
"""

from __future__ import annotations

from typing import Any

from .tokens import CompletionMeter, family_of
from .types import JSONDict, ModelSpec, RequestFeatures, Usage


def _completion_cap(features: RequestFeatures, model: ModelSpec) -> int:
    return min(features.max_tokens or model.max_output_tokens, model.max_output_tokens)


def reported_usage(data: Any) -> Usage | None:
    """A server's ``usage`` object, or None when it sent none (an all-zero usage counts as none)."""
    if not isinstance(data, dict):
        return None
    usage = Usage.from_openai(data)
    return usage if usage.total_tokens else None


def counted_prompt_tokens(features: RequestFeatures, model: ModelSpec) -> int:
    """The prompt as ``model`` counts it (its tokenizer where installed, plus its chat template)."""
    if features.prompt is None:
        return features.prompt_tokens
    return features.prompt.count_for(family_of(model.upstream, model.id)).tokens


class StreamUsage:
    """Follows one stream's chunks: the completion so far (for metering), and its final usage."""

    __slots__ = ("features", "model", "meter", "reported", "_last")

    def __init__(self, features: RequestFeatures, model: ModelSpec) -> None:
        self.features = features
        self.model = model
        self.meter = CompletionMeter(family_of(model.upstream, model.id), _completion_cap(features, model))
        self.reported: Usage | None = None
        self._last: JSONDict | None = None

    def observe(self, chunk: JSONDict) -> None:
        reported = reported_usage(chunk.get("usage"))
        if reported is not None:
            self.reported = reported
        self.meter.add(chunk)
        self._last = chunk

    @property
    def completion_tokens(self) -> int:
        """The completion so far: the server's figure once it sent one, else the count, never past the cap."""
        if self.reported is not None and self.reported.completion_tokens:
            return self.reported.completion_tokens
        return self.meter.tokens

    def final(self) -> Usage:
        if self.reported is not None:
            return self.reported
        return Usage(counted_prompt_tokens(self.features, self.model), self.meter.tokens, estimated=True)

    def usage_chunk(self, usage: Usage) -> JSONDict:
        """The closing chunk a client that asked for ``include_usage`` expects, when the server sent none."""
        last = self._last or {}
        return {"id": last.get("id", ""), "object": "chat.completion.chunk", "created": last.get("created", 0),
                "model": last.get("model", self.model.upstream), "choices": [],
                "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                          "total_tokens": usage.total_tokens}}


def response_usage(features: RequestFeatures, model: ModelSpec, response: JSONDict) -> Usage:
    """A complete (non-streamed) answer's usage when the server reported none: counted from its messages."""
    meter = CompletionMeter(family_of(model.upstream, model.id), _completion_cap(features, model))
    for i, choice in enumerate(response.get("choices") or ()):
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict):
            calls = [{**c, "index": j} for j, c in enumerate(message.get("tool_calls") or ()) if isinstance(c, dict)]
            meter.add({"choices": [{"index": i, "delta": {**message, "tool_calls": calls}}]})
    return Usage(counted_prompt_tokens(features, model), meter.tokens, estimated=True)
