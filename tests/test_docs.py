"""The configuration examples in the README are valid configuration."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tierroute.catalog import Catalog
from tierroute.config import parse_settings

ROOT = Path(__file__).resolve().parents[1]


def yaml_blocks(path: Path) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", path.read_text(), flags=re.S)


def test_readme_config_example_validates():
    (block,) = [b for b in yaml_blocks(ROOT / "README.md") if b.startswith("providers:")]
    env = {"OPENAI_API_KEY": "a", "ANTHROPIC_API_KEY": "b", "AZURE_OPENAI_API_KEY": "c", "TIERROUTE_KEY": "k"}
    settings = parse_settings(yaml.safe_load(block), source="README.md", environ=env)
    catalog = Catalog.build(settings)
    assert [d.id for d in catalog.deployments["gpt-4o-mini"]] == ["openai/gpt-4o-mini", "azure/gpt-4o-mini-eu"]
    assert [m.id for m in catalog.tiers["extraction"]] == ["qwen-7b", "gpt-5-nano"]


class _AnyEnvironment(dict):
    """Every ${VAR} a doc mentions resolves to a placeholder."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str:
        return "sk-placeholder"


def test_docs_config_sections_validate():
    checked = 0
    for path in sorted((ROOT / "docs").glob("*.md")):
        for block in yaml_blocks(path):
            raw = yaml.safe_load(block)
            if not isinstance(raw, dict) or not set(raw) & {"reliability", "limits", "router", "intents", "ledger"}:
                continue
            raw.setdefault("providers", {"openai": {"api_key": "x"}, "anthropic": {"api_key": "x"},
                                         "groq": {"api_key": "x"}})
            parse_settings(raw, source=path.name, environ=_AnyEnvironment())
            checked += 1
    assert checked >= 2
