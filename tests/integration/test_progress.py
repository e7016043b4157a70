"""Progress events over Server-Sent Events: live, replayable, resumable; and as JSON."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from cove.engine.settings import Settings
from cove.server import create_app
from tests.conftest import APPS, free_port, wait_until


class LiveServer:
    """A Cove server on a real socket, in a thread of this process (streams stay live)."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            create_app(Settings(data_dir=data_dir)),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> httpx.Client:
        self.thread.start()
        wait_until(lambda: self.server.started, 60, "the server to listen")
        self.client = httpx.Client(base_url=self.url, timeout=60)
        path = APPS / "watched.py"
        r = self.client.post("/applications", files={"code": (path.name, path.read_bytes())})
        assert r.status_code == 201, r.text
        return self.client

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(60)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with LiveServer(tmp_path_factory.mktemp("data")) as client:
        yield client


def sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Each event as ``{"id", "event", "data"}``, and each comment as ``{"comment"}``."""
    event: dict[str, Any] = {}
    for line in lines:
        if line == "":
            if "data" in event:
                event["data"] = json.loads(event["data"])
                yield event
            event = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            field, _, value = line.partition(": ")
            event[field] = value


def events_of(response: httpx.Response) -> list[dict[str, Any]]:
    return [e for e in sse(response.iter_lines()) if "comment" not in e]


def invoke(client: httpx.Client, app: str, body: Any) -> str:
    r = client.post(f"/applications/{app}", json=body)
    assert r.status_code == 200, r.text
    return str(r.json()["request_id"])


def status(client: httpx.Client, app: str, request_id: str) -> str:
    return str(client.get(f"/applications/{app}/requests/{request_id}").json()["status"])


def progress_url(app: str, request_id: str) -> str:
    return f"/applications/{app}/requests/{request_id}/progress"


def test_events_stream_live_before_the_request_finishes(live: httpx.Client, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    rid = invoke(live, "gated", str(gate))
    seen: list[dict[str, Any]] = []
    with live.stream("GET", progress_url("gated", rid), params={"keepalive": 0.2}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        comments = 0
        for event in sse(r.iter_lines()):
            if "comment" in event:
                comments += 1
            else:
                seen.append(event)
            waiting = [e for e in seen if e["event"] == "progress"]
            if waiting and comments and not gate.exists():
                # Progress and keep-alives arrived while the request still waits on us.
                assert waiting[0]["data"]["message"] == "waiting for the gate"
                wait_until(lambda: status(live, "gated", rid) == "running", 30)
                gate.touch()
    kinds = [e["event"] for e in seen]
    assert kinds[0] == "request_started" and kinds[-1] == "request_finished"
    assert kinds.count("progress") == 2 and "call_started" in kinds and "call_finished" in kinds
    assert [int(e["id"]) for e in seen] == list(range(1, len(seen) + 1))
    assert all(e["data"]["type"] == e["event"] and e["data"]["id"] == int(e["id"]) for e in seen)
    finished = seen[-1]["data"]
    assert finished["status"] == "succeeded" and finished["output"] == "opened"
    started = next(e["data"] for e in seen if e["event"] == "call_started")
    assert started["function"] == "gated" and started["attempt"] == 1 and started["container"]


def test_replay_from_the_start_and_resume_after_last_event_id(live: httpx.Client) -> None:
    rid = invoke(live, "fan", 3)
    with live.stream("GET", progress_url("fan", rid)) as r:
        everything = events_of(r)  # ends by itself after request_finished
    assert everything[-1]["event"] == "request_finished"
    assert everything[-1]["data"]["output"] == 0 + 1 + 4
    functions = [e["data"]["function"] for e in everything if e["event"] == "call_started"]
    assert sorted(functions) == ["fan", "square", "square", "square"]
    with live.stream(
        "GET", progress_url("fan", rid), headers={"Last-Event-ID": everything[4]["id"]}
    ) as r:
        rest = events_of(r)
    assert rest == everything[5:]
    with live.stream("GET", progress_url("fan", rid), params={"after": 2}) as r:
        assert events_of(r) == everything[2:]


def test_json_format_answers_the_same_events(live: httpx.Client) -> None:
    rid = invoke(live, "fan", 2)
    with live.stream("GET", progress_url("fan", rid)) as r:
        streamed = [e["data"] for e in events_of(r)]
    polled = live.get(progress_url("fan", rid), params={"format": "json"}).json()
    assert polled["events"] == streamed
    assert polled["status"] == "succeeded" and polled["last_event_id"] == streamed[-1]["id"]
    later = live.get(progress_url("fan", rid), params={"format": "json", "after": 3}).json()
    assert later["events"] == streamed[3:]
    progress = [e for e in streamed if e["type"] == "progress"]
    assert [(p["current"], p["total"]) for p in progress] == [(0, 2), (1, 2), (2, 2)]


def test_invoke_with_accept_event_stream_streams_the_new_request(live: httpx.Client) -> None:
    with live.stream(
        "POST", "/applications/fan", json=3, headers={"Accept": "text/event-stream"}
    ) as r:
        assert r.status_code == 200
        rid = r.headers["x-cove-request-id"]
        events = events_of(r)
    assert events[0]["data"]["type"] == "request_started"
    assert events[-1]["data"]["status"] == "succeeded" and events[-1]["data"]["output"] == 5
    assert live.get(f"/applications/fan/requests/{rid}").json()["status"] == "succeeded"


def test_large_outputs_are_linked_not_inlined(live: httpx.Client) -> None:
    rid = invoke(live, "bulky", 20_000)
    with live.stream("GET", progress_url("bulky", rid)) as r:
        finished = events_of(r)[-1]["data"]
    assert "output" not in finished
    assert finished["output_url"] == f"/applications/bulky/requests/{rid}/output"
    assert live.get(finished["output_url"]).json() == "x" * 20_000
    small = invoke(live, "bulky", 10)
    with live.stream("GET", progress_url("bulky", small)) as r:
        assert events_of(r)[-1]["data"]["output"] == "x" * 10


def test_failed_request_finishes_its_stream_with_the_error(live: httpx.Client) -> None:
    rid = invoke(live, "overslept", None)
    with live.stream("GET", progress_url("overslept", rid)) as r:
        events = events_of(r)
    finished = events[-1]["data"]
    assert finished["status"] == "failed" and finished["error"]["function_name"] == "sleepy"
    ended = [e["data"] for e in events if e["event"] == "call_finished"]
    sleepy = [e for e in ended if e["function"] == "sleepy"]
    assert sleepy and all(e["error"]["reason"] == "function_timeout" for e in sleepy)
    assert ended[-1]["function"] == "overslept" and ended[-1]["status"] == "failed"


def test_unknown_request_and_bad_last_event_id(live: httpx.Client) -> None:
    assert live.get(progress_url("fan", "nope")).status_code == 404
    rid = invoke(live, "fan", 1)
    r = live.get(progress_url("fan", rid), headers={"Last-Event-ID": "x"})
    assert r.status_code == 400
