"""The dashboard's pages, rendered by the server: content, 404s, filters, paging, escaping."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import deployed_client, wait_until

HOSTILE = "<script>alert('x')</script>&\"quoted\""


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with deployed_client(tmp_path_factory.mktemp("data"), "ui_apps.py") as c:
        yield c


def run(client: TestClient, app: str, body: Any = None, **kwargs: Any) -> str:
    if body is not None:
        kwargs["json"] = body
    r = client.post(f"/applications/{app}", params={"wait": 60}, **kwargs)
    assert r.status_code in (200, 500), r.text
    return str(r.headers["x-cove-request-id"])


def page(client: TestClient, path: str, status: int = 200) -> str:
    r = client.get(path)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("text/html")
    return r.text


def bars(text: str) -> list[tuple[str, str, str]]:
    """(call, attempt, status) of each Gantt bar in a page."""
    found = re.findall(
        r'<div class="bar status-[a-z_]+"[^>]*data-status="([a-z_]+)" '
        r'data-call="([0-9.]+)" data-attempt="(\d+)"',
        text,
    )
    return [(call, attempt, status) for status, call, attempt in found]


def test_home_lists_applications_functions_and_pools(client: TestClient) -> None:
    run(client, "retried")
    text = page(client, "/ui")
    for app in ("stepper", "retried", "echo", "failing", "shout"):
        assert f'href="/ui/apps/{app}"' in text
    # The pools of each application's functions, linked to their containers pages.
    assert 'href="/ui/apps/retried/functions/flaky"' in text
    assert 'href="/ui/apps/stepper/functions/work"' in text
    assert "idle" in text  # retried's containers stay warm for a while


def test_application_page_and_unknown_application(client: TestClient) -> None:
    text = page(client, "/ui/apps/stepper")
    assert "<h1>stepper" in text and "gate" in text and "steps" in text  # parameters
    assert 'href="/ui/apps/stepper/functions/work"' in text
    missing = page(client, "/ui/apps/nowhere", 404)
    assert "nowhere" in missing and "not deployed" in missing
    page(client, "/ui/apps/nowhere/requests", 404)
    page(client, "/ui/apps/ns~stepper", 404)  # engine names are never reachable by path


def test_requests_status_filter_and_paging(client: TestClient) -> None:
    failed = [run(client, "failing", "boom") for _ in range(3)]
    succeeded = [run(client, "echo", "x") for _ in range(1)]
    assert succeeded
    text = page(client, "/ui/apps/failing/requests?status=failed")
    assert all(rid in text for rid in failed)
    assert 'class="filter active">failed' in text.replace("\n", "")
    assert "boom" in text  # the error message
    empty = page(client, "/ui/apps/failing/requests?status=succeeded")
    assert not any(rid in empty for rid in failed) and "No requests." in empty
    page(client, "/ui/apps/failing/requests?status=bogus", 400)

    # Two a page, newest first, the filter kept in the next page's link.
    first = page(client, "/ui/apps/failing/requests?status=failed&limit=2")
    assert failed[2] in first and failed[1] in first and failed[0] not in first
    [link] = re.findall(r'<a class="next" rel="next" href="([^"]+)"', first)
    link = html.unescape(link)
    assert "status=failed" in link and "cursor=" in link and "limit=2" in link
    second = page(client, link)
    assert failed[0] in second and failed[1] not in second
    assert 'class="next"' not in second and 'class="newest"' in second


def test_request_page_shows_everything(client: TestClient, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    for i in (1, 2):
        (gate / str(i)).touch()
    rid = run(client, "stepper", {"gate": str(gate), "steps": 2})
    text = page(client, f"/ui/apps/stepper/requests/{rid}")
    assert 'class="status status-succeeded">succeeded' in text
    assert 'id="progress-bar" class="bar" style="width: 100%"' in text
    assert "step 2 done" in text
    shown = html.unescape(text)
    assert f'<dt>gate</dt>\n    <dd><pre>"{gate}"</pre>' in shown  # the input
    assert "<dt>steps</dt>\n    <dd><pre>2</pre>" in shown
    assert '<pre id="output">30</pre>' in text  # 1*10 + 2*10
    assert f'href="/applications/stepper/requests/{rid}/output"' in text
    # One Gantt bar per attempt, as many as the timeline has.
    timeline = client.get(f"/applications/stepper/requests/{rid}/timeline").json()
    attempts = [
        (c["id"], str(a["attempt"]), a["status"])
        for c in timeline["calls"]
        for a in c["attempt_history"]
    ]
    assert sorted(bars(text)) == sorted(attempts) and len(attempts) == 3
    # Logs of both functions, state and metrics.
    assert "waiting for step 1" in text and "working on step 2" in text
    assert "<code>steps</code></td><td>counter</td><td>2</td>" in text
    assert 'noscript><meta http-equiv="refresh"' not in text  # finished: no reload


def test_request_page_logs_filtered_by_function(client: TestClient, tmp_path: Path) -> None:
    for i in (1, 2):
        (tmp_path / str(i)).touch()
    rid = run(client, "stepper", {"gate": str(tmp_path), "steps": 2})
    text = page(client, f"/ui/apps/stepper/requests/{rid}?function=work")
    assert "working on step 1" in text and "working on step 2" in text
    assert "waiting for step" not in text
    assert 'data-function="work"' in text and '<option value="work" selected>' in text


def test_retried_call_shows_two_bars(client: TestClient) -> None:
    rid = run(client, "retried")
    text = page(client, f"/ui/apps/retried/requests/{rid}")
    flaky = [b for b in bars(text) if b[0] == "0.0"]
    assert flaky == [("0.0", "1", "failed"), ("0.0", "2", "succeeded")]
    assert 'class="row retry" data-call="0.0" data-attempt="2"' in text
    assert "flaky failure 1" in text  # the failed attempt's error, on its bar
    assert "<code>tries</code>" in text  # the state key


def test_running_request_reloads_without_javascript(client: TestClient, tmp_path: Path) -> None:
    r = client.post("/applications/stepper", json={"gate": str(tmp_path), "steps": 1})
    rid = r.json()["request_id"]
    status = lambda: client.get(f"/applications/stepper/requests/{rid}").json()["status"]  # noqa: E731
    wait_until(lambda: status() == "running", what="the request to run")
    text = page(client, f"/ui/apps/stepper/requests/{rid}")
    assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in text
    assert 'data-finished="false"' in text and "Not finished yet." in text
    assert 'class="bar status-running"' in text
    (tmp_path / "1").touch()
    wait_until(lambda: status() == "succeeded", what="the request to finish")
    part = page(client, f"/ui/apps/stepper/requests/{rid}/part/output")
    assert '<pre id="output">10</pre>' in part and "<html" not in part


def test_parts_and_unknown_request(client: TestClient) -> None:
    rid = run(client, "retried")
    for part in ("summary", "timeline", "output", "state", "metrics"):
        text = page(client, f"/ui/apps/retried/requests/{rid}/part/{part}")
        assert "<html" not in text
    page(client, f"/ui/apps/retried/requests/{rid}/part/nope", 404)
    missing = page(client, "/ui/apps/retried/requests/nope", 404)
    assert "has no request" in missing
    page(client, "/ui/apps/retried/requests/nope/part/timeline", 404)
    page(client, f"/ui/apps/echo/requests/{rid}", 404)  # another application's request


def test_user_content_is_escaped(client: TestClient) -> None:
    rid = run(client, "echo", HOSTILE)
    assert "<script>alert" not in page(client, "/ui/apps/echo/requests")
    failed = run(client, "failing", HOSTILE)
    pages = [
        page(client, f"/ui/apps/echo/requests/{rid}"),
        page(client, f"/ui/apps/echo/requests/{rid}/part/state"),
        page(client, "/ui/apps/failing/requests"),
        page(client, f"/ui/apps/failing/requests/{failed}"),
    ]
    for text in pages:
        assert "<script>alert" not in text
        assert "&lt;script&gt;alert(" in text
    request_page = pages[0]
    # In logs, state keys, metric names, progress message and output.
    assert request_page.count("&lt;script&gt;alert(") >= 5


def test_file_input_and_output_download(client: TestClient) -> None:
    rid = run(client, "shout", files={"doc": ("a.txt", b"quiet words", "text/plain")})
    text = page(client, f"/ui/apps/shout/requests/{rid}")
    given = f"/applications/shout/requests/{rid}/input/doc"
    assert f'href="{given}" download' in text and "text/plain, 11 bytes" in text
    assert client.get(given).content == b"quiet words"
    output = f"/applications/shout/requests/{rid}/output"
    assert f'href="{output}" download' in text and '<pre id="output">' not in text
    assert "text/plain, 11 bytes" in text.split('id="part-output"')[1]
    assert client.get(output).content == b"QUIET WORDS"


def test_containers_page(client: TestClient) -> None:
    run(client, "retried")
    text = page(client, "/ui/apps/retried/functions/flaky")
    assert "Containers of flaky" in text and 'data-state="idle"' in text
    assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in text
    part = page(client, "/ui/apps/retried/functions/flaky/part")
    assert 'class="container state-idle"' in part and "<html" not in part
    page(client, "/ui/apps/retried/functions/nope", 404)


def test_static_files(client: TestClient) -> None:
    for name in ("cove.css", "request.js", "containers.js"):
        assert client.get(f"/ui/static/{name}").status_code == 200
