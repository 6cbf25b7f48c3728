"""The one exception tree of tierroute.

Every error the library raises, and every upstream failure a provider sees, is one of these::

    TierrouteError
    ├── ConfigError                    bad configuration file or environment (start-up only)
    ├── RequestError                   the caller's request is wrong (HTTP 4xx)
    │   ├── InvalidRequest             malformed body; names the offending field (400)
    │   ├── NoModelFits                no candidate satisfies the hard constraints (400)
    │   ├── AuthenticationError        missing or wrong gateway key (401)
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
        ├── UpstreamContextTooLong     prompt too long for that model (400)
        ├── UpstreamContentFiltered    refused by the provider's content filter (400)
        └── AllAttemptsFailed          every candidate was tried and failed (503)

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
    """A provider failed. ``retryable`` says whether another attempt may succeed."""

    http_status = 502
    error_type = "upstream_error"
    code = "upstream_error"
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        deployment: str | None = None,
        upstream_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.deployment = deployment
        self.upstream_status = upstream_status

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


class UpstreamAuthError(UpstreamError):
    http_status = 502
    code = "upstream_auth"


class UpstreamContextTooLong(UpstreamError):
    http_status = 400
    error_type = "invalid_request_error"
    code = "context_length_exceeded"


class UpstreamContentFiltered(UpstreamError):
    http_status = 400
    error_type = "invalid_request_error"
    code = "content_filter"


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
