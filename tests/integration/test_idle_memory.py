"""A finished request leaves nothing big behind in memory; once requests stop, the server
gives the memory they made it grow to back to the system (Engine._release_memory_when_idle):
after each spell of requests, with none running."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cove.engine import engine as engine_module
from cove.engine import events as events_module
from cove.engine.model import Call
from tests.conftest import deployed_client, wait_until


def test_the_server_releases_memory_once_requests_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    with deployed_client(tmp_path, "core.py") as client:
        engine = client.app.state.engine  # type: ignore[attr-defined]

        def release() -> bool:
            calls.append(len(engine.live))
            return True

        monkeypatch.setattr(engine_module, "release_free_memory", release)
        for _ in range(3):
            assert client.post("/applications/shout?wait=30", json="a").json() == "A"
        wait_until(lambda: len(calls) == 1, 30, "memory released after the requests")
        assert calls == [0]  # with no request running
        assert client.post("/applications/shout?wait=30", json="b").json() == "B"
        wait_until(lambda: len(calls) == 2, 30, "released again after the next idle spell")
        assert calls == [0, 0]


def _sequential(client: TestClient, n: int) -> str:
    """Run many_sequential(n) (n child calls, one after another); its request id."""
    r = client.post("/applications/many_sequential?wait=60", json=n)
    assert r.status_code == 200, r.text
    return r.headers["X-Cove-Request-Id"]


def _events(client: TestClient, request_id: str, after: int = 0) -> list[dict[str, Any]]:
    url = f"/applications/many_sequential/requests/{request_id}/progress"
    events: list[dict[str, Any]] = client.get(
        url, params={"format": "json", "after": after}
    ).json()["events"]
    return events


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with deployed_client(tmp_path, "execution.py") as client:
        yield client


def test_a_finished_request_leaves_no_call_in_memory_and_its_stream_in_a_bounded_window(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Keep finished streams of at most 60 entries and calls, beside the newest one.
    monkeypatch.setattr(events_module, "RECENT_WEIGHT", 60)
    engine = client.app.state.engine  # type: ignore[attr-defined]
    first = _sequential(client, 40)

    def calls_alive() -> int:
        gc.collect()
        return sum(isinstance(o, Call) and o.run.id == first for o in gc.get_objects())

    # Nothing (the writer's last batch, a closure) holds the finished request's calls.
    wait_until(lambda: calls_alive() == 0, 30, "the finished request's calls freed")
    assert first in engine.events.recent  # the newest finished stream stays
    everything = _events(client, first)
    assert len(everything) == 1 + 41 * 2 + 1  # started, each call started and finished

    second = _sequential(client, 5)
    # The first (over 60 entries and calls) made room for the second; its readers get
    # the same events from the journal.
    assert first not in engine.events.recent
    assert second in engine.events.recent
    assert _events(client, first) == everything


def test_a_running_request_keeps_a_window_of_journaled_events_in_memory(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_module, "EVENT_WINDOW", 10)
    engine = client.app.state.engine  # type: ignore[attr-defined]
    held: list[int] = []  # events in memory as each is emitted, while the request runs

    def listener(rid: str, app: str, entry: object) -> None:
        feed = engine.events.feeds.get(rid)
        if feed is not None:
            held.append(len(feed.events.items))

    engine.events.listeners.append(listener)
    rid = _sequential(client, 60)
    # 123 events before the last; memory held the window and what was not journaled
    # yet, never all of them.
    assert len(held) == 123 and max(held) < 60, held
    feed = engine.events.recent[rid]
    wait_until(lambda: feed.events.journaled == 124, 30, "every event journaled")
    # Readers still get every event, in order: the journal's, then memory's.
    assert [e["id"] for e in _events(client, rid)] == list(range(1, 125))
    assert [e["id"] for e in _events(client, rid, after=100)] == list(range(101, 125))


def test_outputs_let_go_from_memory_are_read_from_the_journal(tmp_path: Path) -> None:
    with deployed_client(tmp_path, "core.py") as client:
        recent = client.app.state.engine.recent  # type: ignore[attr-defined]
        recent.output_bytes = 3_000  # room for one output of the three below
        ids, answers = [], []
        for n in range(3):
            r = client.post("/applications/anything?wait=30", json=str(n) * 2_000)
            assert r.status_code == 200, r.text
            ids.append(r.headers["X-Cove-Request-Id"])
            answers.append(r.json())
        assert recent.held_bytes <= 3_000
        assert [recent.get(i).output is None for i in ids] == [True, True, False]
        assert answers[0] == {"got": "0" * 2_000}
        for request_id, answer in zip(ids, answers, strict=True):
            r = client.get(f"/applications/anything/requests/{request_id}/output")
            assert r.status_code == 200 and r.json() == answer
