"""`tierroute models` keeps its table aligned when ids are long (discovered local models, long config ids)."""

from __future__ import annotations

import subprocess
import sys

import yaml

LONG_ID = "llamacpp/" + "a-very-long-model-name-as-a-local-server-may-list-it-for-its-weights-file-q4_k_m-gguf"


def test_columns_stay_aligned_with_a_long_model_id(tmp_path):
    config = {
        "providers": {"llamacpp": {"kind": "openai", "api_base": "http://127.0.0.1:9/v1"},
                      "a-provider-with-a-long-name": {"kind": "openai", "api_base": "http://127.0.0.1:9/v1"}},
        "models": [
            {"id": LONG_ID, "provider": "llamacpp", "context_window": 2048, "input_price": 0, "output_price": 0,
             "tier": "general"},
            {"id": "short", "provider": "a-provider-with-a-long-name", "context_window": 128000,
             "input_price": 0.15, "output_price": 0.6, "tier": "a-tier-named-at-length"},
        ],
        "tiers": [{"name": "general", "models": [LONG_ID]}, {"name": "a-tier-named-at-length", "models": ["short"]}],
        "router": {"default_tier": "general"},
        "ledger": {"backend": "none"},
    }
    path = tmp_path / "tierroute.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "tierroute", "models", "--config", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(LONG_ID) > 80 and any(line.startswith(LONG_ID + " ") for line in lines)
    # Every column starts where its header does: the context figure ends under "context" on each line.
    header = lines[0]
    end_of_context = header.index("context") + len("context")
    for line in lines[1:]:
        assert line[:end_of_context].rstrip().split()[-1].isdigit(), line
        assert line[end_of_context] == " " and line[end_of_context - 1].isdigit(), (header, line)
    assert lines[1].index("2048") + 4 == lines[2].index("128000") + 6 == end_of_context
