"""One line's outcome, and its output line in the OpenAI batch output format.

``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}``, as the OpenAI Batch API
writes it, plus a ``tierroute`` object (line number, model, cost, tries) that resume and the summary read.
A failed line carries the OpenAI error body in ``response.body`` (when a request was made) and
``{"code", "message"}`` in ``error``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(slots=True)
class BatchResult:
    line: int
    custom_id: str
    status_code: int
    response: dict[str, Any] | None = None  # the chat completion, when answered
    error: dict[str, Any] | None = None  # {"code", "message"} when not
    request_id: str | None = None
    model: str | None = None
    cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0
    tries: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def reason(self) -> str:
        """Why it failed, for the summary ('' when it did not)."""
        return "" if self.error is None else str(self.error.get("code") or "error")

    def output_line(self) -> bytes:
        if self.error is None:
            body: Any = self.response
        else:
            body = {"error": {"message": self.error.get("message"), "type": self.error.get("type"),
                              "param": self.error.get("param"), "code": self.error.get("code")}}
        record = {
            "id": f"batch_req_{self.request_id or self.line}",
            "custom_id": self.custom_id,
            "response": None if self.status_code == 0 else {
                "status_code": self.status_code, "request_id": self.request_id, "body": body},
            "error": None if self.error is None else {"code": self.error.get("code"), "message": self.error.get("message")},
            "tierroute": {"line": self.line, "model": self.model, "cost_usd": round(self.cost_usd, 10),
                          "baseline_cost_usd": round(self.baseline_cost_usd, 10), "tries": self.tries},
        }
        return orjson.dumps(record) + b"\n"


def failure(line: int, custom_id: str, code: str, message: str, *, status_code: int = 0, tries: int = 0,
            error_type: str = "invalid_request_error", request_id: str | None = None) -> BatchResult:
    return BatchResult(line=line, custom_id=custom_id, status_code=status_code, tries=tries, request_id=request_id,
                       error={"code": code, "message": message, "type": error_type, "param": None})
