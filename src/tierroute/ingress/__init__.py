"""Client-facing API dialects other than chat completions, each translated to and from a chat-completions body.

One module per dialect, each pure translation; the server routes the translated request through the same
:class:`~tierroute.router.Router` as ``/v1/chat/completions``, so routing, limits, failover and the ledger apply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..types import JSONDict
from . import anthropic_messages, openai_responses


class EventWriter(Protocol):
    """Writes one streamed answer in a dialect's event format, from OpenAI chat chunks."""

    def start(self) -> bytes: ...

    def feed(self, chunk: JSONDict) -> bytes: ...

    def finish(self) -> bytes: ...

    def fail(self, status: int, exc: BaseException) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one client API maps onto chat completions.

    ``to_chat_request(body)`` validates and translates a request (raising ``InvalidRequest`` naming the field);
    ``answer(response, body, request_id=, model=)`` turns a routed chat completion into the dialect's answer;
    ``events(body, request_id=, model=, input_tokens=)`` makes the :class:`EventWriter` of a streamed answer;
    ``error_body(status, exc)`` is an error in the dialect's shape.
    """

    name: str
    to_chat_request: Callable[[Any], JSONDict]
    answer: Callable[..., JSONDict]
    events: Callable[..., EventWriter]
    error_body: Callable[[int, BaseException], JSONDict]


ANTHROPIC_MESSAGES = Dialect("anthropic-messages", anthropic_messages.to_chat_request, anthropic_messages.to_message,
                             anthropic_messages.MessageStream, anthropic_messages.error_body)
OPENAI_RESPONSES = Dialect("openai-responses", openai_responses.to_chat_request, openai_responses.to_response,
                           openai_responses.ResponseStream, openai_responses.error_body)

__all__ = ["ANTHROPIC_MESSAGES", "OPENAI_RESPONSES", "Dialect", "EventWriter"]
