"""Logs of function calls: captured in containers, attributed, filtered, followed live."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_progress import LiveServer, events_of, invoke, sse


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with LiveServer(tmp_path_factory.mktemp("data")) as client:
        yield client


def finished(client: httpx.Client, app: str, rid: str) -> dict[str, Any]:
    """Wait for the request to finish (its event stream ends then)."""
    with client.stream("GET", f"/applications/{app}/requests/{rid}/progress") as r:
        events = events_of(r)
    data: dict[str, Any] = events[-1]["data"]
    return data


def logs(client: httpx.Client, app: str, rid: str, **params: Any) -> list[dict[str, Any]]:
    r = client.get(f"/applications/{app}/requests/{rid}/logs", params=params)
    assert r.status_code == 200, r.text
    lines: list[dict[str, Any]] = r.json()["logs"]
    return lines


def test_stdout_stderr_and_logging_are_attributed_to_each_call(live: httpx.Client) -> None:
    rid = invoke(live, "fan", 3)
    assert finished(live, "fan", rid)["status"] == "succeeded"
    lines = logs(live, "fan", rid)
    squares = [line for line in lines if line["function"] == "square"]
    by_call: dict[str, list[dict[str, Any]]] = {}
    for line in squares:
        by_call.setdefault(line["call_id"], []).append(line)
    assert sorted(by_call) == ["0.0.0", "0.0.1", "0.0.2"]
    for call_id, mine in by_call.items():
        i = int(call_id.rsplit(".", 1)[1])
        got = {(line["stream"], line["level"], line["message"]) for line in mine}
        assert got == {
            ("stdout", None, f"squaring {i}"),
            ("stderr", None, f"warning about {i}"),
            ("log", "INFO", f"watched: logged {i}"),
        }
        assert all(line["attempt"] == 1 and line["container"] for line in mine)
        assert all(line["at"].startswith("20") for line in mine)
    [fan] = [line for line in lines if line["function"] == "fan"]
    assert (fan["call_id"], fan["message"]) == ("0", "fan starts")
    assert [line["id"] for line in lines] == list(range(1, len(lines) + 1))


def test_filter_by_function_and_page_with_after(live: httpx.Client) -> None:
    rid = invoke(live, "fan", 2)
    finished(live, "fan", rid)
    only = logs(live, "fan", rid, function="fan")
    assert [line["message"] for line in only] == ["fan starts"]
    everything = logs(live, "fan", rid)
    assert logs(live, "fan", rid, after=2, limit=2) == everything[2:4]


def test_retries_and_timeouts_keep_each_attempts_lines(live: httpx.Client) -> None:
    rid = invoke(live, "wobbly", None)
    assert finished(live, "wobbly", rid)["output"] == "steady"
    tries = [(line["attempt"], line["message"]) for line in logs(live, "wobbly", rid)]
    assert tries == [(1, "shaky try 1"), (2, "shaky try 2"), (3, "shaky try 3")]
    # A container killed for its timeout: what it printed before is kept.
    rid = invoke(live, "overslept", None)
    assert finished(live, "overslept", rid)["status"] == "failed"
    sleepy = logs(live, "overslept", rid, function="sleepy")
    assert sleepy and sleepy[0]["message"].startswith("sleepy in ")
    assert sleepy[0]["attempt"] == 1


def test_follow_streams_lines_live_until_the_request_finishes(
    live: httpx.Client, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    rid = invoke(live, "gated", str(gate))
    seen: list[str] = []
    url = f"/applications/gated/requests/{rid}/logs"
    with live.stream("GET", url, params={"follow": "true", "keepalive": 0.5}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for event in sse(r.iter_lines()):
            if "comment" in event:
                continue
            assert event["event"] == "log"
            seen.append(event["data"]["message"])
            if event["data"]["message"] == "waiting for the gate":
                assert not gate.exists()  # the line came while the call still runs
                gate.touch()
    assert seen == ["waiting for the gate", "through the gate"]
    # Resuming after the first line gives the rest, then ends (the request is finished).
    with live.stream("GET", url, params={"follow": "true"}, headers={"Last-Event-ID": "1"}) as r:
        assert [e["data"]["message"] for e in events_of(r)] == ["through the gate"]
