"""The one exception tree of tierroute.

Every error the library raises, and every upstream failure a provider sees, is one of these::

    TierrouteError
    ├── ConfigError                    bad configuration file or environment (start-up only)
    ├── RequestError                   the caller's request is wrong (HTTP 4xx)
    │   ├── InvalidRequest             malformed body; names the offending field (400)
    │   ├── NoModelFits                no candidate satisfies the hard constraints (400)
    │   ├── AuthenticationError        missing or wrong gateway key (401)
    │   ├── PermissionDenied           a virtual key may not use that model or tier (403)
    │   ├── ModelNotFound              unknown model or tier name (404)
    │   ├── CrossSiteRefused           a key-less gateway refuses what a browser on another site sent (403)
    │   ├── PayloadTooLarge            body above the configured limit (413)
    │   ├── UnsupportedMediaType       a key-less gateway takes only Content-Type: application/json (415)
    │   └── LimitExceeded              a budget, rate limit or loop guard refused it (429)
    ├── StateUnavailable               the shared limits store is unreachable and fails closed (503)
    ├── EncoderError                   an optional sentence encoder cannot be built or failed (routing falls back)
    └── UpstreamError                  a provider failed to answer (HTTP 5xx to the caller)
        ├── UpstreamRateLimited        429 from the provider, with retry_after_seconds
        ├── UpstreamTimeout            connect, first-token or total timeout (504)
        ├── UpstreamUnavailable        5xx or connection failure (502/503)
        ├── UpstreamBadRequest         the provider rejected the request (400)
        ├── UpstreamAuthError          the provider rejected our key (502)
        ├── UpstreamNotFound           the deployment's URL or upstream model name does not exist (502)
        ├── UpstreamEmptyAnswer        a stream ended with no content and no finish reason (502)
        ├── UpstreamContextTooLong     prompt too long for that model (400)
        ├── UpstreamContentFiltered    refused by the provider's content filter (400)
        └── AllAttemptsFailed          every candidate was tried and failed (503)
            └── DeadlineExceeded       the request's deadline passed before anything answered (504)

A refusal or failure raised while serving a request carries the request's ``request_id`` once one was
assigned, so the error response can name it (``x-tierroute-request-id``) and the caller can find it in the ledger.

Errors from the HTTP client are translated into this tree in exactly one place per wire format
(``providers/``); the server maps the tree to OpenAI-shaped error bodies in ``server/errors.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class TierrouteError(Exception):
    """Base of every tierroute error."""

    http_status: int = 500
    error_type: str = "server_error"
    code: str | None = None
    request_id: str | None = None  # set by the router on the instance once the request has an id

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def to_dict(self) -> dict[str, Any]:
        """The OpenAI error body: ``{"error": {"message", "type", "param", "code"}}``."""
        return {"error": {"message": self.message, "type": self.error_type, "param": self.param, "code": self.code}}


class ConfigError(TierrouteError):
    """The configuration file or environment is invalid; raised before anything starts."""

    error_type = "config_error"


class RequestError(TierrouteError):
    http_status = 400
    error_type = "invalid_request_error"


class InvalidRequest(RequestError):
    code = "invalid_request"


class NoModelFits(RequestError):
    code = "no_model_fits"


class AuthenticationError(RequestError):
    http_status = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(RequestError):
    """An authenticated key may not do this (a model or tier outside a virtual key's allowed lists)."""

    http_status = 403
    error_type = "permission_error"
    code = "permission_denied"


class ModelNotFound(RequestError):
    http_status = 404
    code = "model_not_found"


class CrossSiteRefused(RequestError):
    """Without API keys, only requests addressed to a loopback name from no other site's page are answered."""

    http_status = 403
    error_type = "permission_error"
    code = "cross_site_request"


class UnsupportedMediaType(RequestError):
    """Without API keys, a request body must be declared ``application/json`` (browsers cannot send that
    cross-site without asking first)."""

    http_status = 415
    code = "unsupported_media_type"


class PayloadTooLarge(RequestError):
    http_status = 413
    code = "payload_too_large"


class LimitExceeded(RequestError):
    """A budget, rate limit or runaway guard refused the request."""

    http_status = 429
    error_type = "rate_limit_error"
    code = "limit_exceeded"

    def __init__(
        self,
        message: str,
        *,
        scope: str | None = None,
        remaining: float | None = None,
        reset_seconds: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.scope = scope
        self.remaining = remaining
        self.reset_seconds = reset_seconds
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        body["error"].update(
            {"scope": self.scope, "remaining": self.remaining, "reset_seconds": self.reset_seconds, **self.details}
        )
        return body


class StateUnavailable(TierrouteError):
    """The shared state store cannot be reached and ``limits.state.on_error`` is ``closed``."""

    http_status = 503
    error_type = "server_error"
    code = "limits_unavailable"


class EncoderError(TierrouteError):
    """A sentence encoder cannot be built (missing extra, bad settings) or failed to encode (endpoint down, bad
    answer). The gateway never surfaces it to a client: a request whose embedding fails is routed on priors."""

    error_type = "encoder_error"


class UpstreamError(TierrouteError):
    """A provider failed. ``retryable`` says whether another attempt may succeed.

    ``upstream_param`` and ``upstream_code`` are the ``param`` and ``code`` of the provider's own error body.
    Errors that blame the caller's request (``passes_through``) hand them on to the caller, who needs them to
    fix the request; the others keep tierroute's code, since e.g. an upstream ``invalid_api_key`` is about
    tierroute's key, not the caller's.
    """

    http_status = 502
    error_type = "upstream_error"
    code = "upstream_error"
    retryable: bool = False
    passes_through: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        deployment: str | None = None,
        upstream_status: int | None = None,
        upstream_param: str | None = None,
        upstream_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.deployment = deployment
        self.upstream_status = upstream_status
        self.upstream_param = upstream_param
        self.upstream_code = upstream_code

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        if self.passes_through:
            error = body["error"]
            if self.upstream_param is not None:
                error["param"] = self.upstream_param
            if self.upstream_code is not None:
                error["code"] = self.upstream_code
        return body

    @property
    def kind(self) -> str:
        """Short name recorded in the ledger, e.g. ``rate_limited``."""
        return self.code or "upstream_error"


class UpstreamRateLimited(UpstreamError):
    http_status = 429
    error_type = "rate_limit_error"
    code = "rate_limited"
    retryable = True

    def __init__(self, message: str, *, retry_after_seconds: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after_seconds = retry_after_seconds


class UpstreamTimeout(UpstreamError):
    http_status = 504
    code = "timeout"
    retryable = True


class UpstreamUnavailable(UpstreamError):
    http_status = 502
    code = "unavailable"
    retryable = True


class UpstreamBadRequest(UpstreamError):
    http_status = 400
    error_type = "invalid_request_error"
    code = "bad_request"
    passes_through = True


class UpstreamAuthError(UpstreamError):
    http_status = 502
    code = "upstream_auth"


class UpstreamNotFound(UpstreamError):
    """404: the deployment is misconfigured (wrong ``api_base`` path or upstream model name), not the request."""

    http_status = 502
    code = "upstream_not_found"


class UpstreamEmptyAnswer(UpstreamError):
    """A stream ended without content or a finish reason, e.g. llama.cpp's answer to a prompt it finds too long."""

    http_status = 502
    code = "empty_answer"


class UpstreamContextTooLong(UpstreamError):
    http_status = 400
    error_type = "invalid_request_error"
    code = "context_length_exceeded"
    passes_through = True


class UpstreamContentFiltered(UpstreamError):
    http_status = 400
    error_type = "invalid_request_error"
    code = "content_filter"
    passes_through = True


class AllAttemptsFailed(UpstreamError):
    """Every candidate deployment was tried; ``attempts`` says what each one did."""

    http_status = 503
    code = "all_attempts_failed"

    def __init__(self, message: str, *, attempts: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.attempts = list(attempts)

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        body["error"]["attempts"] = [{"deployment": d, "error": e} for d, e in self.attempts]
        return body


class DeadlineExceeded(AllAttemptsFailed):
    """The request's deadline passed before any attempt answered; ``attempts`` says what each one did."""

    http_status = 504
    code = "deadline_exceeded"
