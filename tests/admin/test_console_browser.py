"""The console in a real headless browser (Debian's chromium driven by Playwright) against a gateway whose
ledger holds realistic traffic: each page loads without console errors and shows the ledger's figures, and a
key created in the UI answers a request. Screenshots go to $TIERROUTE_SCREENSHOTS (default: the test's tmp dir).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import openai
import pytest

from tierroute.bootstrap import build_guards

from ..conftest import fake_settings

ADMIN = "admin-key-0123456789abcdef"
ROWS = 3000


def chromium() -> str:
    """Debian's chromium, installed with apt-get when missing (never a downloaded browser build)."""
    found = shutil.which("chromium")
    if found is None:
        install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
        try:
            if subprocess.run(install, capture_output=True, timeout=900).returncode != 0:
                # A fresh machine has no package lists yet.
                subprocess.run(["apt-get", "update"], check=True, capture_output=True, timeout=600)
                subprocess.run(install, check=True, capture_output=True, timeout=900)
        except (OSError, subprocess.SubprocessError) as exc:
            pytest.skip(f"chromium is not installed and could not be installed with apt-get ({exc}); "
                        "run: apt-get update && apt-get install -y chromium")
        found = shutil.which("chromium")
    if found is None:
        pytest.skip("chromium not found after apt-get install -y chromium")
    return found


@pytest.fixture
def browser() -> Any:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (tierroute[dev])")
    path = chromium()
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def seeded(fake_upstream: Any, tmp_path: Path, serve_settings: Any) -> Any:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from console_ledger import fill

    settings = fake_settings(fake_upstream.url, tmp_path, server={"admin_key": ADMIN},
                             keys={"enabled": True, "poll_interval_seconds": 0.2})
    fill(settings.ledger.path, ROWS, days=6.0)
    return serve_settings(settings, guards=build_guards(settings))


def test_every_page_loads_shows_the_ledger_figures_and_a_key_made_in_the_ui_works(browser, seeded, tmp_path):
    shots = Path(os.environ.get("TIERROUTE_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(seeded.router.settings.ledger.path)
    total, spend = db.execute("SELECT count(*), sum(cost_usd) FROM requests WHERE final = 1").fetchone()
    db.close()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))

    page.goto(f"{seeded.url}/ui")
    page.fill("#admin-key", "wrong-key-0000000000")
    page.click("button[type=submit]")
    page.wait_for_selector("#login-error:has-text('refused')")
    errors.clear()  # the refused sign-in's 401 is logged by the browser, as it should be
    page.fill("#admin-key", ADMIN)
    page.click("button[type=submit]")
    page.wait_for_selector("#total-requests")
    assert page.inner_text("#total-requests") == f"{total:,}"
    assert page.inner_text("#total-spend") == f"${spend:.2f}"
    page.screenshot(path=str(shots / "overview.png"), full_page=True)

    for name, marker in (("routing", "text=Requests per model"), ("deployments", "text=fake/fake-big"),
                         ("requests", "text=req-000002999"), ("quality", "#quality-placeholder")):
        page.click(f"nav a[data-page={name}]")
        page.wait_for_selector(marker)
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    # the request log pages backwards by id
    page.click("nav a[data-page=requests]")
    page.wait_for_selector("text=req-000002999")
    page.click("#older")
    page.wait_for_selector("text=req-000002949")

    page.click("nav a[data-page=keys]")
    page.wait_for_selector("#create-key")
    page.fill("#create-key input[name=name]", "from the ui")
    page.fill("#create-key input[name=team]", "research")
    page.fill("#create-key input[name=usd]", "5")
    page.click("#create-key button[type=submit]")
    secret = page.inner_text("#new-key").strip()
    page.wait_for_selector("text=from the ui")
    page.screenshot(path=str(shots / "keys.png"), full_page=True)
    assert secret.startswith("tr-")

    deadline = time.monotonic() + 10
    while True:
        try:
            answer = openai.OpenAI(base_url=f"{seeded.url}/v1", api_key=secret, max_retries=0).chat.completions.create(
                model="small", messages=[{"role": "user", "content": "hi"}], max_tokens=5)
            break
        except openai.AuthenticationError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert answer.choices[0].message.content

    # revoked from the UI: refused within the poll interval (generous bound)
    page.on("dialog", lambda d: d.accept())
    page.click("button[data-revoke]")
    page.wait_for_selector("text=from the ui", state="detached")
    deadline = time.monotonic() + 10
    while True:
        try:
            openai.OpenAI(base_url=f"{seeded.url}/v1", api_key=secret, max_retries=0).chat.completions.create(
                model="small", messages=[{"role": "user", "content": "hi"}], max_tokens=5)
        except openai.AuthenticationError:
            break
        assert time.monotonic() < deadline, "the key revoked in the UI still works"
        time.sleep(0.1)

    assert errors == []
    # the admin key never travels in a URL, and nothing is fetched from anywhere but the gateway
    assert all(ADMIN not in url and url.startswith(seeded.url) for url in requested), requested
