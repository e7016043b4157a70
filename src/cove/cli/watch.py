"""Following a request's Server-Sent Events from the CLI: a live progress bar, and logs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cove.errors import UnavailableError

#: Seconds between the server's keep-alives while following (also how often a deadline is
#: checked when nothing happens).
KEEPALIVE = 1.0


def sse_events(
    url: str, path: str, params: dict[str, Any], deadline: float | None = None
) -> Iterator[dict[str, Any]]:
    """The JSON of each event of a Server-Sent Events stream, until it ends (or the
    deadline passes). Reconnects with ``Last-Event-ID`` when the connection drops."""
    last: str | None = None
    while True:
        from cove.sdk.client import auth_headers

        headers = {"Accept": "text/event-stream", **auth_headers()}
        if last is not None:
            headers["Last-Event-ID"] = last
        try:
            with (
                httpx.Client(base_url=url, timeout=httpx.Timeout(30.0, read=KEEPALIVE * 30)) as c,
                c.stream(
                    "GET", path, params={**params, "keepalive": KEEPALIVE}, headers=headers
                ) as response,
            ):
                if response.status_code >= 400:
                    response.read()
                    from cove.sdk.client import _error_of

                    raise _error_of(response)
                for event_id, data in _parse(response.iter_lines()):
                    if deadline is not None and time.monotonic() > deadline:
                        return
                    if data is None:
                        continue
                    last = event_id or last
                    yield json.loads(data)
                return
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ReadTimeout) as exc:
            if deadline is not None and time.monotonic() > deadline:
                return
            if last is None:
                raise UnavailableError(f"the event stream of {path} broke: {exc}") from None
        except httpx.TransportError as exc:
            raise UnavailableError(f"cannot reach the Cove server at {url}: {exc}") from None


def _parse(lines: Iterator[str]) -> Iterator[tuple[str | None, str | None]]:
    """``(id, data)`` per event; ``(None, None)`` for a comment (a keep-alive)."""
    event_id: str | None = None
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield event_id, "\n".join(data)
            event_id, data = None, []
        elif line.startswith(":"):
            yield None, None
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "id":
                event_id = value
            elif field == "data":
                data.append(value)


def request_path(app: str, request_id: str, what: str) -> str:
    return f"/applications/{quote(app, safe='')}/requests/{quote(request_id, safe='')}/{what}"


def progress_bar(
    url: str, app: str, request_id: str, console: Console, timeout: float
) -> dict[str, Any] | None:
    """Show the request's progress live until it finishes; its ``request_finished`` event,
    or None when ``timeout`` passed first."""
    deadline = time.monotonic() + max(timeout, 0.0)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[calls]}", style="dim"),
    )
    finished: dict[str, Any] | None = None
    calls: dict[str, str] = {}
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(app, total=None, calls="")
        path = request_path(app, request_id, "progress")
        for event in sse_events(url, path, {}, deadline):
            kind = event.get("type")
            if kind == "progress":
                total = float(event.get("total") or 0) or None
                bar.update(
                    task,
                    total=total,
                    completed=float(event.get("current") or 0),
                    description=str(event.get("message") or app),
                )
            elif kind == "call_started":
                calls[str(event["call_id"])] = "running"
            elif kind == "call_finished":
                calls[str(event["call_id"])] = str(event.get("status"))
            elif kind == "request_finished":
                finished = event
            done = sum(1 for s in calls.values() if s != "running")
            bar.update(task, calls=f"calls {done}/{len(calls)}")
        if finished is not None and finished.get("status") == "succeeded":
            total = bar.tasks[0].total
            if total is None:  # no progress reported: the bar just completes
                bar.update(task, total=1, completed=1)
            else:
                bar.update(task, completed=total)
    return finished


def log_line(entry: dict[str, Any]) -> str:
    """One log line: time, where it came from, and the text."""
    at = str(entry.get("at") or "")[11:23]
    attempt = entry.get("attempt")
    where = f"{entry.get('function')}[{entry.get('call_id')}" + (
        f" #{attempt}]" if attempt else "]"
    )
    stream = entry.get("stream")
    tag = entry.get("level") if stream == "log" else stream
    return f"{at} {where} {tag}: {entry.get('message')}"
