"""``cove logs APP REQUEST_ID [-f]``: what a request's function calls printed and logged."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from cove.cli.output import SERVER_HELP, client, console, handle_errors
from cove.cli.watch import log_line, request_path, sse_events

_STYLE = {"stderr": "yellow", "ERROR": "red", "CRITICAL": "bold red", "WARNING": "yellow"}


def _print(entry: dict[str, Any]) -> None:
    style = _STYLE.get(str(entry.get("level") or entry.get("stream")), "")
    console.print(Text(log_line(entry), style=style), soft_wrap=True)


@handle_errors
def logs(
    app: Annotated[str, typer.Argument(help="The application.")],
    request_id: Annotated[str, typer.Argument(help="The request's id.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until it finishes.")
    ] = False,
    function: Annotated[
        str | None, typer.Option("--function", "-F", help="Only this function's lines.")
    ] = None,
    server: Annotated[str | None, typer.Option("--server", "-s", help=SERVER_HELP)] = None,
) -> None:
    """Print the logs of a request's function calls (stdout, stderr, logging), each line
    with its time, function, call id and attempt."""
    params: dict[str, Any] = {"function": function} if function else {}
    with client(server) as c:
        path = request_path(app, request_id, "logs")
        if follow:
            for entry in sse_events(c.url, path, {**params, "follow": "true"}):
                _print(entry)
            return
        after = 0
        while True:  # page through everything recorded so far
            page = c._send("GET", path, params={**params, "after": after}).json()
            for entry in page["logs"]:
                _print(entry)
            if not page["logs"] or page["last_event_id"] == after:
                return
            after = page["last_event_id"]
