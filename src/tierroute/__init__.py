"""tierroute: an OpenAI-compatible model router.

Send each LLM request to the cheapest model that will answer it well, fail over when a provider breaks,
guard spend, and record every decision. Use it as a gateway (``tierroute serve``) or in-process::

    from tierroute import build_router

    with build_router("tierroute.yaml") as router:
        routed = router.completion({"model": "auto", "messages": [{"role": "user", "content": "Hi"}]})
        print(routed.response["choices"][0]["message"]["content"], routed.headers["x-tierroute-model"])
"""

from __future__ import annotations

from ._exceptions import (
    AllAttemptsFailed,
    AuthenticationError,
    ConfigError,
    CrossSiteRefused,
    DeadlineExceeded,
    EncoderError,
    InvalidRequest,
    LimitExceeded,
    ModelNotFound,
    NoModelFits,
    PayloadTooLarge,
    RequestError,
    StateUnavailable,
    TierrouteError,
    UnsupportedMediaType,
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamContentFiltered,
    UpstreamContextTooLong,
    UpstreamEmptyAnswer,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from .bootstrap import build_router
from .catalog import Catalog
from .config import Settings, load_settings_file, parse_settings
from .policies import Policy
from .router import Plan, Routed, RoutedStream, Router
from .types import Decision, Deployment, ModelSpec, Ranked, RequestFeatures, StateSnapshot, Usage

__version__ = "0.1.0"

__all__ = [
    "AllAttemptsFailed",
    "AuthenticationError",
    "Catalog",
    "ConfigError",
    "CrossSiteRefused",
    "DeadlineExceeded",
    "Decision",
    "Deployment",
    "EncoderError",
    "InvalidRequest",
    "LimitExceeded",
    "ModelNotFound",
    "ModelSpec",
    "NoModelFits",
    "PayloadTooLarge",
    "Plan",
    "Policy",
    "Ranked",
    "RequestError",
    "RequestFeatures",
    "Routed",
    "RoutedStream",
    "Router",
    "Settings",
    "StateSnapshot",
    "StateUnavailable",
    "TierrouteError",
    "UnsupportedMediaType",
    "UpstreamAuthError",
    "UpstreamBadRequest",
    "UpstreamContentFiltered",
    "UpstreamContextTooLong",
    "UpstreamEmptyAnswer",
    "UpstreamError",
    "UpstreamNotFound",
    "UpstreamRateLimited",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "Usage",
    "build_router",
    "load_settings_file",
    "parse_settings",
]
