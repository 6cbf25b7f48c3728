"""Upstream error answers mapped onto the exception tree: who is blamed, what the caller is told."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import orjson
import pytest

from tierroute._exceptions import UpstreamBadRequest, UpstreamNotFound, UpstreamRateLimited
from tierroute.providers.errors import MAX_RETRY_AFTER_SECONDS, from_status, retry_after_seconds
from tierroute.reliability.retry import Fault, fault_of
from tierroute.server.errors import error_response

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("headers, expected", [
    ({"retry-after": "3"}, 3.0),
    ({"retry-after": " 2.5 "}, 2.5),
    ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
    ({"retry-after-ms": "nan", "retry-after": "9"}, 9.0),
    ({"retry-after": "inf"}, MAX_RETRY_AFTER_SECONDS),
    ({"retry-after": "-inf"}, 0.0),
    ({"retry-after": "1e400"}, MAX_RETRY_AFTER_SECONDS),
    ({"retry-after": "-5"}, 0.0),
    ({"retry-after": "nan"}, None),
    ({"retry-after": "soon"}, None),
    ({"retry-after": ""}, None),
    ({"retry-after": "Thu, 01 Jan 2026 00:00:30 GMT"}, 30.0),
    ({"retry-after": "Wed, 31 Dec 2025 23:00:00 GMT"}, 0.0),
    ({"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"}, MAX_RETRY_AFTER_SECONDS),
    ({"retry-after": "Mon, 99 Foo 2026 99:99:99 GMT"}, None),
])
def test_retry_after_is_always_none_or_a_finite_capped_wait(headers, expected):
    seconds = retry_after_seconds(headers, now=NOW)
    assert seconds == expected
    assert seconds is None or (math.isfinite(seconds) and 0 <= seconds <= MAX_RETRY_AFTER_SECONDS)


@pytest.mark.parametrize("seconds", [math.inf, 1e300, -3.0, 0.2, 7.0])
def test_a_429_with_any_wait_is_a_json_answer_with_a_whole_number_retry_after(seconds):
    status, body, headers = error_response(UpstreamRateLimited("429", retry_after_seconds=seconds))
    assert status == 429 and orjson.loads(body)["error"]["code"] == "rate_limited"
    assert 1 <= int(dict(headers)[b"retry-after"]) <= 86400


def test_a_404_blames_the_deployment_and_a_400_keeps_the_upstream_param_and_code():
    body = orjson.dumps({"error": {"message": "no such model", "type": "invalid_request_error",
                                   "param": "model", "code": "model_not_found"}})
    not_found = from_status(404, body, {}, provider="p", deployment="p/m")
    assert isinstance(not_found, UpstreamNotFound) and fault_of(not_found) is Fault.DEPLOYMENT
    assert not_found.to_dict()["error"]["code"] == "upstream_not_found", "our deployment's fault, not the caller's"
    body = orjson.dumps({"error": {"message": "bad temperature", "type": "invalid_request_error",
                                   "param": "temperature", "code": "invalid_value"}})
    bad = from_status(400, body, {}, provider="p", deployment="p/m")
    assert isinstance(bad, UpstreamBadRequest) and fault_of(bad) is Fault.UNSURE
    error = bad.to_dict()["error"]
    assert (error["param"], error["code"], error["type"]) == ("temperature", "invalid_value", "invalid_request_error")
