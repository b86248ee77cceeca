"""The viewer's readiness page in a real headless Chromium (Debian's ``chromium``, driven by
Playwright) against the real server over the hand-made twin: staff-only, then the report of a chosen
use case. Skips without Chromium or the viewer bundle, like tests/e2e/test_viewer.py."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from civictwin.api.viewer import viewer_built

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]

if not CHROMIUM.is_file():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)
if not viewer_built():
    pytest.skip("the viewer bundle is not built (make web)", allow_module_level=True)


@pytest.fixture(scope="module")
def server(twin_dir: Path) -> Iterator[str]:
    """The real app under uvicorn in a thread on a free loopback port; stopped after the module."""
    import uvicorn

    from civictwin.api.app import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    uv = uvicorn.Server(
        uvicorn.Config(create_app(twin_dir), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the API server did not start within 30 s")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(timeout=10)


def test_the_readiness_page(server: str, twin_dir: Path) -> None:
    from playwright.sync_api import sync_playwright

    from civictwin.governance.tokens import Role, create_token, tokens_path

    token = create_token(tokens_path(twin_dir / "readiness-test.duckdb"), role=Role.ANALYST, name="e2e").token
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
            page.goto(f"{server}/viewer/#readiness")
            page.wait_for_selector("#readiness-status:has-text('for staff')", timeout=30_000)
            assert page.inner_text("#readiness-status") == (
                "Readiness is for staff: use an analyst, steward or admin token."
            )
            page.fill("#token", token)
            page.click("#token-form button[type=submit]")  # reloads the page with the token
            page.wait_for_selector(".readiness-level", timeout=30_000)
            assert page.title() == "civictwin · Readiness"
            assert (
                page.inner_text(".readiness-level") == "Level 0 of 4: not ready"
            )  # heat-green, first by name
            page.select_option("#use-case", "traffic-plan")
            page.wait_for_selector(".readiness-level:has-text('Level 2')", timeout=30_000)
            assert page.inner_text(".readiness-level") == "Level 2 of 4: informative"
            steps = page.locator("#readiness-report ul.summary li").all_inner_texts()
            assert len(steps) == 1 and steps[0].startswith("Public transport departures per stop and hour")
            assert "Add the operator's GTFS feed" in steps[0]
            rows = page.locator("#readiness-report table").nth(1).locator("tbody tr").all_inner_texts()
            assert [row.split("\t")[3] for row in rows] == [
                "present",
                "present",
                "present",
                "missing",
                "failed",
            ]
        finally:
            browser.close()
