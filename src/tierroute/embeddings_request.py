"""Validate an OpenAI ``/v1/embeddings`` request body and size its input, in one pass."""

from __future__ import annotations

import math
from typing import Any

from . import tokens
from ._exceptions import InvalidRequest
from .chat_request import client_labels
from .types import JSONDict, RequestFeatures

# Fields passed through to the provider unchanged (the request's other routing-only fields are removed).
ENCODING_FORMATS = ("float", "base64")
MAX_INPUTS = 2048  # OpenAI's limit on the number of inputs in one request


def _kind(value: Any) -> str:
    return {str: "string", dict: "object", list: "array", bool: "boolean", int: "number", float: "number"}.get(
        type(value), "null" if value is None else type(value).__name__)


def estimate_tokens(text: str) -> int:
    """A central estimate: budgets settle to the upstream's own count, which embeddings answers always carry."""
    return math.ceil(tokens.estimate(text))


def _input_tokens(value: Any) -> int:
    """Tokens of ``input``: a string, an array of strings, an array of token ids, or an array of such arrays."""
    if isinstance(value, str):
        return estimate_tokens(value)
    if not isinstance(value, list) or not value:
        raise InvalidRequest(f"input: expected a string or a non-empty array, got {_kind(value)}", param="input")
    if len(value) > MAX_INPUTS:
        raise InvalidRequest(f"input: at most {MAX_INPUTS} inputs per request, got {len(value)}", param="input")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return len(value)
    total = 0
    for i, item in enumerate(value):
        if isinstance(item, str):
            total += estimate_tokens(item)
        elif isinstance(item, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in item):
            total += len(item)
        else:
            raise InvalidRequest(f"input[{i}]: expected a string or an array of token ids, got {_kind(item)}",
                                 param=f"input[{i}]")
    return total


def parse_embeddings_request(body: Any, *, caller: str | None = None) -> RequestFeatures:
    """The :class:`RequestFeatures` of an embeddings request; raises :class:`InvalidRequest` naming the field."""
    if not isinstance(body, dict):
        raise InvalidRequest(f"request body: expected a JSON object, got {_kind(body)}")
    if "input" not in body:
        raise InvalidRequest("input: required field is missing", param="input")
    tokens = _input_tokens(body["input"])
    model = body.get("model") or "auto"
    if not isinstance(model, str):
        raise InvalidRequest(f"model: expected a string, got {_kind(model)}", param="model")
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ENCODING_FORMATS:
        raise InvalidRequest(f"encoding_format: expected 'float' or 'base64', got {encoding!r}", param="encoding_format")
    dimensions = body.get("dimensions")
    if dimensions is not None and (not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1):
        raise InvalidRequest(f"dimensions: expected a positive integer, got {dimensions!r}", param="dimensions")
    user, tags, _ = client_labels(body)
    return RequestFeatures(requested_model=model, prompt_tokens=tokens, max_tokens=0, text="", caller=caller,
                           user=user, tags=tags)


def upstream_embeddings_body(body: JSONDict, upstream_model: str) -> JSONDict:
    out = {k: v for k, v in body.items() if k != "tierroute"}
    out["model"] = upstream_model
    return out
