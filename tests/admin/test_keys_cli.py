"""`tierroute keys ...` on the ledger's database, and `serve` refusing a public bind without an admin key."""

from __future__ import annotations

import json

from ..cli.test_newcomer import free_port, run_cli, write_config


def keyed_config(tmp_path, upstream, **server):
    import yaml

    path = write_config(tmp_path, upstream)
    config = yaml.safe_load(path.read_text())
    config["keys"] = {"enabled": True}
    if server:
        config["server"] = server
    path.write_text(yaml.safe_dump(config))
    return path


def test_keys_create_list_update_rotate_revoke(tmp_path, fake_upstream):
    config = str(keyed_config(tmp_path, fake_upstream.url))
    made = run_cli("keys", "create", "-c", config, "--name", "ci", "--team", "research", "--models", "cheap",
                   "--budget-usd", "2")
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["key"].startswith("tr-") and key["budgets"] == [{"scope": "caller", "match": "*", "window": "day",
                                                                 "usd": 2.0}]
    listed = run_cli("keys", "list", "-c", config)
    assert key["id"] in listed.stdout and key["key"] not in listed.stdout and "research" in listed.stdout
    updated = json.loads(run_cli("keys", "update", "-c", config, key["id"], "--budget-usd", "5").stdout)
    assert updated["budgets"][0]["usd"] == 5.0 and updated["team"] == "research"  # the rest kept
    rotated = json.loads(run_cli("keys", "rotate", "-c", config, key["id"]).stdout)
    assert rotated["key"] != key["key"] and rotated["caller"] == key["caller"]
    assert json.loads(run_cli("keys", "revoke", "-c", config, key["id"]).stdout)["status"] == "revoked"
    assert key["id"] not in run_cli("keys", "list", "-c", config).stdout
    assert key["id"] in run_cli("keys", "list", "-c", config, "--all").stdout
    bad = run_cli("keys", "create", "-c", config, "--models", "nope")
    assert bad.returncode != 0 and "unknown model 'nope'" in bad.stderr


def test_serve_refuses_public_bind_with_keys_and_no_admin_key(tmp_path, fake_upstream):
    config = keyed_config(tmp_path, fake_upstream.url)
    result = run_cli("serve", "--config", str(config), "--host", "0.0.0.0", "--port", str(free_port()))
    assert result.returncode != 0
    assert "server.admin_key" in result.stderr
