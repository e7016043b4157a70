"""``cove invoke``, ``cove requests``, ``cove request`` and ``cove output``."""

from __future__ import annotations

import contextlib
import json
import mimetypes
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from cove.cli.output import (
    EXIT_PENDING,
    SERVER_HELP,
    client,
    console,
    err_console,
    error_summary,
    fail,
    handle_errors,
    new_table,
    print_json,
    print_output,
    short_time,
    status_text,
)
from cove.cli.watch import progress_bar
from cove.errors import NotFoundError, RequestFailed, UnavailableError
from cove.sdk.client import Client

#: Longest single ``?wait=`` asked of the server while polling (its limit is ``max_wait``).
_WAIT_CHUNK = 30.0


# -- invoke -------------------------------------------------------------------------------
#: The ``--arg`` and ``--file`` options, shared by ``cove invoke`` and ``cove run``.
ArgOption = Annotated[
    list[str] | None,
    typer.Option(
        "--arg", "-a", help="NAME=VALUE argument (VALUE is JSON, else a string). Repeatable."
    ),
]
FileOption = Annotated[
    list[str] | None, typer.Option("--file", "-f", help="NAME=PATH file argument. Repeatable.")
]


def split_named(option: str, raw: str) -> tuple[str, str]:
    """``NAME=VALUE`` of an ``--arg`` or ``--file`` option, or a clear failure."""
    name, sep, value = raw.partition("=")
    if not sep or not name.strip():
        fail(f"{option} expects NAME=VALUE, got {raw!r}")
    return name.strip(), value


def read_file_argument(name: str, where: str) -> tuple[str, bytes, str]:
    """A ``--file NAME=PATH`` option's file: its name, bytes and guessed content type."""
    path = Path(where).expanduser()
    if not path.is_file():
        fail(f"--file {name}: {path} is not a file")
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return path.name, path.read_bytes(), content_type


def _as_json_part(value: str) -> bytes:
    """A ``--arg`` value as JSON: itself when it parses, else as a JSON string."""
    try:
        json.loads(value)
    except ValueError:
        return json.dumps(value, ensure_ascii=False).encode()
    return value.encode()


def build_body(json_value: str | None, args: list[str], files: list[str]) -> dict[str, Any]:
    """The keyword arguments of :meth:`Client.invoke` for the given options."""
    if json_value is not None:
        if args or files:
            fail(
                "--json sends the single argument as the body: do not combine it with --arg/--file"
            )
        try:
            json.loads(json_value)
        except ValueError as exc:
            fail(f"--json value is not valid JSON ({exc}); quote strings, e.g. --json '\"text\"'")
        return {"content": json_value.encode(), "headers": {"Content-Type": "application/json"}}
    if not args and not files:
        return {}
    parts: dict[str, tuple[str, bytes, str]] = {}
    for raw in args:
        name, value = split_named("--arg", raw)
        if name in parts:
            fail(f"argument {name!r} is given more than once")
        parts[name] = (f"{name}.json", _as_json_part(value), "application/json")
    for raw in files:
        name, where = split_named("--file", raw)
        if name in parts:
            fail(f"argument {name!r} is given more than once")
        parts[name] = read_file_argument(name, where)
    return {"files": parts}


def wait_for_output(c: Client, app: str, request_id: str, timeout: float) -> httpx.Response | None:
    """The output response once the request finishes, or None after ``timeout`` seconds.

    A failed request raises :class:`RequestFailed`.
    """
    deadline = time.monotonic() + max(timeout, 0.0)
    with err_console.status(f"Waiting for request {escape(request_id)} …") as spinner:
        while True:
            remaining = deadline - time.monotonic()
            chunk = min(max(remaining, 0.0), _WAIT_CHUNK)
            response = c.output(app, request_id, wait=chunk if chunk > 0 else None)
            if response.status_code != 202:
                return response
            if remaining <= 0:
                return None
            state = _pending_status(response)
            spinner.update(f"Waiting for request {escape(request_id)} ({escape(state)}) …")


def _pending_status(response: httpx.Response) -> str:
    try:
        return str(response.json().get("status", "running"))
    except ValueError:
        return "running"


def _still_running(app: str, request_id: str, what: str) -> None:
    err_console.print(
        Text(f"Request {request_id} is still running{what}. ", style="yellow")
        + Text(f"Fetch its output later with: cove output {app} {request_id}")
    )
    raise typer.Exit(EXIT_PENDING)


def _failed(err: RequestFailed, request_id: str) -> None:
    function_name = err.details.get("function_name")
    message = err.message
    prefix = f"request {request_id} failed: "
    if message.startswith(prefix):
        message = message[len(prefix) :]
    where = f" in function {function_name}" if function_name else ""
    fail(f"request {request_id} failed{where}: {message}")


@handle_errors
def invoke(
    app: Annotated[str, typer.Argument(help="The application to invoke.")],
    json_value: Annotated[
        str | None,
        typer.Option("--json", "-j", help="JSON value sent as the body: the single argument."),
    ] = None,
    arg: ArgOption = None,
    file: FileOption = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait for the output and print it.")
    ] = True,
    timeout: Annotated[
        float, typer.Option("--timeout", "-t", help="Seconds to wait for the output.")
    ] = 300.0,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write a File output to this path.")
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key", help="Invoking again with the same key returns the same request."
        ),
    ] = None,
    server: Annotated[str | None, typer.Option("--server", "-s", help=SERVER_HELP)] = None,
) -> None:
    """Invoke an application: no option sends no arguments.

    --json VALUE sends the single argument; --arg NAME=VALUE and --file NAME=PATH send one
    multipart part per argument.
    """
    body = build_body(json_value, arg or [], file or [])
    if idempotency_key:
        body["headers"] = {**body.get("headers", {}), "Idempotency-Key": idempotency_key}
    with client(server) as c:
        response = c.invoke(app, **body)
        request_id = str(response.json()["request_id"])
        if not wait:
            console.print(request_id, markup=False)
            err_console.print(
                f"Fetch its output with: cove output {app} {request_id}", markup=False
            )
            return
        err_console.print(Text("Request ", style="dim") + Text(request_id, style="bold"))
        started = time.monotonic()
        with contextlib.suppress(UnavailableError, NotFoundError):  # no event stream: poll
            progress_bar(c.url, app, request_id, err_console, timeout)  # live, from its events
        try:
            result = wait_for_output(c, app, request_id, timeout - (time.monotonic() - started))
        except RequestFailed as err:
            _failed(err, request_id)
            return
        if result is None:
            _still_running(app, request_id, f" after {timeout:g} s")
            return
        print_output(result, out)


# -- output -------------------------------------------------------------------------------
@handle_errors
def output(
    app: Annotated[str, typer.Argument(help="The application.")],
    request_id: Annotated[str, typer.Argument(help="The request's id.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write a File output to this path.")
    ] = None,
    wait: Annotated[
        float | None,
        typer.Option("--wait", "-w", help="Seconds to wait for an unfinished request."),
    ] = None,
    server: Annotated[str | None, typer.Option("--server", "-s", help=SERVER_HELP)] = None,
) -> None:
    """Print a request's output; exit code 2 while it is still running."""
    with client(server) as c:
        try:
            if wait:
                result = wait_for_output(c, app, request_id, wait)
            else:
                response = c.output(app, request_id)
                result = None if response.status_code == 202 else response
        except RequestFailed as err:
            _failed(err, request_id)
            return
    if result is None:
        _still_running(app, request_id, "")
        return
    print_output(result, out)


# -- requests -----------------------------------------------------------------------------
@handle_errors
def requests(
    app: Annotated[str, typer.Argument(help="The application.")],
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=200, help="How many requests.")
    ] = 20,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="Continue a previous listing.")
    ] = None,
    server: Annotated[str | None, typer.Option("--server", "-s", help=SERVER_HELP)] = None,
) -> None:
    """List an application's recent requests, newest first."""
    with client(server) as c:
        page = c.requests(app, limit=limit, cursor=cursor)
    rows: list[dict[str, Any]] = page.get("requests", [])
    if not rows:
        console.print(f"No requests for {app} yet.", markup=False)
        return
    table = new_table(f"Requests of {app}")
    # Ids are 36 characters: in a narrow terminal they fold onto a second line rather
    # than squeezing the status out of sight.
    table.add_column("id", overflow="fold", min_width=18)
    table.add_column("status", no_wrap=True, min_width=9)
    table.add_column("version", justify="right", no_wrap=True, min_width=7)
    table.add_column("created", overflow="ellipsis", min_width=10)
    table.add_column("finished", overflow="ellipsis", min_width=10)
    table.add_column("error", overflow="fold")
    for r in rows:
        table.add_row(
            str(r["id"]),
            status_text(r.get("status")),
            str(r.get("application_version", "")),
            short_time(r.get("created_at")),
            short_time(r.get("finished_at")),
            Text(error_summary(r.get("error")), style="red"),
        )
    console.print(table)
    next_cursor = page.get("next_cursor")
    if next_cursor:
        console.print(
            f"More: cove requests {app} --limit {limit} --cursor {next_cursor}", markup=False
        )


# -- request ------------------------------------------------------------------------------
def _summary(data: dict[str, Any]) -> Panel:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row(
        "application", f"{data.get('application')} (version {data.get('application_version')})"
    )
    grid.add_row("status", status_text(data.get("status")))
    grid.add_row("created", short_time(data.get("created_at")))
    grid.add_row("finished", short_time(data.get("finished_at")))
    error = data.get("error")
    if error:
        grid.add_row("error", Text(error_summary(error, width=10_000), style="red"))
        if error.get("error_type"):
            grid.add_row("error type", str(error["error_type"]))
    return Panel(grid, title=f"Request {data.get('id')}", title_align="left", expand=False)


def _calls_table(calls: list[dict[str, Any]]) -> Table:
    table = new_table("Function calls")
    for column in ("id", "function", "parent", "status", "attempts", "started", "finished"):
        table.add_column(column, no_wrap=column in ("id", "parent", "started", "finished"))
    table.add_column("error", overflow="fold")
    for call in calls:
        error = call.get("error")
        table.add_row(
            str(call.get("id")),
            Text(str(call.get("function")), style="bold"),
            str(call.get("parent_id") or "-"),
            status_text(call.get("status")),
            str(call.get("attempts", "")),
            short_time(call.get("started_at"), time_only=True),
            short_time(call.get("finished_at"), time_only=True),
            Text(str(error.get("message", "")) if isinstance(error, dict) else "", style="red"),
        )
    return table


def _progress_table(progress: list[dict[str, Any]]) -> Table:
    table = new_table("Progress")
    for column in ("function call", "current", "total", "message"):
        table.add_column(column)
    for p in progress:
        table.add_row(
            str(p.get("function_call_id")),
            f"{p.get('current')}",
            f"{p.get('total')}",
            str(p.get("message") or ""),
        )
    return table


@handle_errors
def request(
    app: Annotated[str, typer.Argument(help="The application.")],
    request_id: Annotated[str, typer.Argument(help="The request's id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON status.")] = False,
    server: Annotated[str | None, typer.Option("--server", "-s", help=SERVER_HELP)] = None,
) -> None:
    """Show a request's status, its function calls, progress and metrics."""
    with client(server) as c:
        data = c.request(app, request_id)
    if as_json:
        print_json(data)
        return
    parts: list[Any] = [_summary(data)]
    calls = data.get("function_calls") or []
    if calls:
        parts.append(_calls_table(calls))
    progress = data.get("progress") or []
    if progress:
        parts.append(_progress_table(progress))
    metrics = data.get("metrics") or {}
    if metrics.get("counters") or metrics.get("timers"):
        parts.append(Text("Metrics", style="bold"))
        parts.append(Text(json.dumps(metrics, indent=2)))
    error = data.get("error") or {}
    if error.get("traceback"):
        parts.append(Text(str(error["traceback"]).rstrip(), style="dim"))
    console.print(Group(*parts))
