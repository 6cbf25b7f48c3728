"""docs/configuration.md is exactly what the settings models render, and the renderer lists any field."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import BaseModel, Field

from tierroute import config_reference
from tierroute.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_the_checked_in_reference_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == config_reference.render(), (
        f"docs/configuration.md is stale: run `{config_reference.COMMAND}`")


def test_every_field_says_what_it_means() -> None:
    assert config_reference.undescribed() == [], "give these fields Field(description=...)"


def test_the_command_prints_the_reference() -> None:
    res = CliRunner().invoke(main, ["config-reference"])
    assert res.exit_code == 0 and res.output == config_reference.render()


class _Leaf(BaseModel):
    """A nested section."""

    depth: int = Field(default=3, gt=0, description="how | deep")
    bare: str | None = None


class _Root(BaseModel):
    single: _Leaf = Field(default_factory=_Leaf, description="one")
    many: list[_Leaf] = Field(default_factory=list, description="several")
    named: dict[str, _Leaf] | None = None
    needed: float = Field(description="no default")


def test_any_field_of_any_nested_model_is_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fields added in other branches appear without touching the renderer, described or not."""
    monkeypatch.setattr(config_reference, "ROOTS", (("", _Root),))
    text = config_reference.render()
    for heading in ("## `single`", "## `many[]`", "## `named.<key>`"):
        assert heading in text
    assert "| `depth` | integer (> 0) | `3` | how \\| deep |" in text  # a pipe in a cell is escaped
    assert f"| `bare` | string | none | {config_reference.UNDESCRIBED} |" in text
    assert "| `needed` | number | required | no default |" in text
    assert config_reference.undescribed() == ["named", "single.bare", "many[].bare", "named.<key>.bare"]
