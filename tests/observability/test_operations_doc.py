"""docs/operations.md's configuration example is valid configuration, and says what the defaults are."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tierroute.config import Settings, parse_settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def test_the_example_validates_and_matches_the_defaults():
    [block] = [b for b in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S) if "telemetry:" in b]
    settings = parse_settings(yaml.safe_load(block), source="operations.md", environ={})
    defaults = Settings()
    assert settings.server.access_log == defaults.server.access_log == "text"
    assert settings.telemetry.model_copy(update={"otlp_endpoint": None}) == defaults.telemetry
    assert settings.telemetry.tracing


def test_every_new_field_is_described():
    from tierroute.config import ServerSettings
    from tierroute.observability.settings import TelemetrySettings

    assert ServerSettings.model_fields["access_log"].description
    assert all(field.description for field in TelemetrySettings.model_fields.values())
