"""The dashboard in a real browser: headless Chromium (the system's package, driven by
Playwright) against a real ``cove server``. Screenshots go to tests/e2e/screenshots/."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import APPS, ServerProcess

pytestmark = pytest.mark.slow
SCREENSHOTS = Path(__file__).parent / "screenshots"
TIMEOUT_MS = 60_000


def _chromium() -> str | None:
    found = os.environ.get("COVE_CHROMIUM") or shutil.which("chromium")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = _chromium()
    if chromium is None:
        pytest.skip("browser tests need Chromium: apt-get install chromium (or set COVE_CHROMIUM)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="browser tests need the playwright package (.[dev])"
    )
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield browser
        browser.close()


@pytest.fixture
def server(server_factory: type[ServerProcess], tmp_path: Path) -> ServerProcess:
    server = server_factory(tmp_path / "data").start()
    server.deploy(APPS / "ui_apps.py")
    return server


def _page(browser: Any, url: str) -> Any:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.evaluate("window.notReloaded = true")  # lost if the page reloads itself
    return page


def _progress(page: Any, value: str) -> None:
    page.wait_for_function(
        "v => document.getElementById('progress').getAttribute('aria-valuenow') === v", arg=value
    )


def _log_line(page: Any, text: str) -> None:
    page.wait_for_function(
        "t => Array.from(document.querySelectorAll('#logs td.message'))"
        ".some(td => td.textContent === t)",
        arg=text,
    )


def _attempts(server: ServerProcess, app: str, rid: str) -> list[tuple[str, str, str]]:
    timeline = httpx.get(f"{server.url}/applications/{app}/requests/{rid}/timeline").json()
    return sorted(
        (c["id"], str(a["attempt"]), a["status"])
        for c in timeline["calls"]
        for a in c["attempt_history"]
    )


def _bars(page: Any) -> list[tuple[str, str, str]]:
    found = page.eval_on_selector_all(
        "#gantt .bar",
        "bars => bars.map(b => [b.dataset.call, b.dataset.attempt, b.dataset.status])",
    )
    return sorted(tuple(b) for b in found)


def test_request_page_follows_a_running_request(
    browser: Any, server: ServerProcess, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    r = httpx.post(f"{server.url}/applications/stepper", json={"gate": str(gate), "steps": 3})
    rid = r.json()["request_id"]
    base = f"{server.url}/ui/apps/stepper"
    page = _page(browser, f"{base}/requests/{rid}")
    containers = _page(browser, f"{base}/functions/work")
    # Nothing has called `work` yet: its page shows no containers.
    assert containers.locator("tr.container").count() == 0
    assert containers.locator("#live-containers").is_visible()

    _progress(page, "0")
    _log_line(page, "waiting for step 1")
    assert page.locator("#live-logs").is_visible()
    for step, percent in ((1, "33.3"), (2, "66.7")):
        (gate / str(step)).touch()
        _progress(page, percent)  # the bar advances with each progress event
        _log_line(page, f"working on step {step}")  # lines arrive live
        assert page.locator("#progress-text").inner_text().endswith(f"step {step} done")
    # The containers page shows `work`'s container without a reload.
    containers.wait_for_selector("tr.container[data-state]")
    assert containers.evaluate("window.notReloaded") is True
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "request-running.png"), full_page=True)

    (gate / "3").touch()
    _progress(page, "100")
    page.wait_for_selector("#status.status-succeeded")
    page.wait_for_selector("#output")
    assert page.locator("#output").inner_text() == "60"
    # One bar per attempt, as the timeline lists them: the entry call and three of `work`.
    attempts = _attempts(server, "stepper", rid)
    assert len(attempts) == 4
    page.wait_for_function(f"document.querySelectorAll('#gantt .bar').length === {len(attempts)}")
    page.wait_for_function("!document.querySelector('#gantt .bar.status-running')")
    assert _bars(page) == attempts
    assert page.evaluate("window.notReloaded") is True  # all of it live, no reload
    page.wait_for_selector("#live-logs", state="hidden")  # its log stream ended with it
    page.reload()  # the same page rendered whole by the server
    assert _bars(page) == attempts
    page.screenshot(path=str(SCREENSHOTS / "request.png"), full_page=True)
    containers.screenshot(path=str(SCREENSHOTS / "containers.png"), full_page=True)


def test_retried_call_shows_two_bars_and_logs_filter(browser: Any, server: ServerProcess) -> None:
    r = httpx.post(f"{server.url}/applications/retried", params={"wait": 60})
    rid = r.headers["x-cove-request-id"]
    page = _page(browser, f"{server.url}/ui/apps/retried/requests/{rid}")
    assert _bars(page) == _attempts(server, "retried", rid)
    flaky = [b for b in _bars(page) if b[0] == "0.0"]
    assert flaky == [("0.0", "1", "failed"), ("0.0", "2", "succeeded")]
    assert page.locator(".row.retry").count() == 1
    # Filtering the logs by function (the select reloads the page with ?function=).
    page.select_option("#log-function", "flaky")
    page.wait_for_url("**function=flaky")
    lines = page.locator("#logs td.message").all_inner_texts()
    assert lines == ["flaky try 1", "flaky try 2"]
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "request-retried.png"), full_page=True)


def test_applications_and_requests_pages(browser: Any, server: ServerProcess) -> None:
    for reason in ("one", "two"):
        httpx.post(f"{server.url}/applications/failing", params={"wait": 60}, json=reason)
    page = _page(browser, f"{server.url}/ui")
    page.click("h2 a[href='/ui/apps/failing']")
    page.click("a[href='/ui/apps/failing/requests']")
    page.click("a.filter[href$='status=failed']")
    page.wait_for_url("**status=failed")
    assert page.locator("tr.request[data-status=failed]").count() == 2
    page.click("tr.request >> nth=0 >> a")
    page.wait_for_selector("#status.status-failed")
    assert "two" in page.locator(".error-box").inner_text()  # newest first
