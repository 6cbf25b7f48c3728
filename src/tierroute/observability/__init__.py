"""What an operator sees: the access log, OpenTelemetry traces, liveness and readiness probes.

Nothing here runs unless configured: with ``server.access_log: off`` and no ``telemetry`` the router holds no
observer and the gateway does no per-request work for it; OpenTelemetry is imported only when traces are on.
"""
