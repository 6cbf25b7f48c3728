"""Configuration of what the gateway tells its operator: the access log, traces and probes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def _yaml_off(value: Any) -> Any:
    return "off" if value is False else value  # YAML 1.1 reads a bare ``off`` as false


AccessLogFormat = Annotated[Literal["json", "text", "off"], BeforeValidator(_yaml_off)]


class TelemetrySettings(BaseModel):
    """``telemetry:``: OpenTelemetry traces (an optional extra) and the readiness probe's cache."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    traces: bool = Field(
        default=False,
        description="Export a span per request and per upstream attempt over OTLP/HTTP (needs "
                    "`pip install tierroute[otel]`). Turned on by setting otlp_endpoint; with traces: true and no "
                    "otlp_endpoint the standard OTEL_EXPORTER_OTLP_* environment variables say where.")
    otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP collector base URL, e.g. http://127.0.0.1:4318 (spans go to <url>/v1/traces; a URL "
                    "already ending in /v1/traces is used as is). Setting it turns traces on.")
    service_name: str = Field(default="tierroute", min_length=1,
                              description="The service.name resource attribute of exported spans.")
    sample_ratio: float = Field(
        default=1.0, ge=0, le=1,
        description="Fraction of new traces recorded (a request whose client sent a traceparent follows the "
                    "client's sampled flag). Spans cost gateway CPU (docs/operations.md, 'What it costs'): lower "
                    "this at high request rates.")
    export_timeout_seconds: float = Field(default=10.0, gt=0,
                                          description="How long one OTLP export may take before it is dropped.")
    readiness_cache_seconds: float = Field(
        default=1.0, ge=0,
        description="How long a /readyz answer is reused, so a storm of probes checks Redis and PostgreSQL at most "
                    "once per this many seconds.")

    @property
    def tracing(self) -> bool:
        return self.traces or self.otlp_endpoint is not None
