"""``cove cancel`` and ``cove replay``: change the course of a request."""

from __future__ import annotations

from typing import Annotated

import typer

from cove.cli.output import SERVER_HELP, client, console, handle_errors


@handle_errors
def cancel(
    app: Annotated[str, typer.Argument(help="The application.")],
    request_id: Annotated[str, typer.Argument(help="The request to cancel.")],
    server: Annotated[str | None, typer.Option("--server", "-s", help=SERVER_HELP)] = None,
) -> None:
    """Cancel a running request: its calls stop and it ends cancelled (for good)."""
    with client(server) as c:
        c.cancel(app, request_id)
    console.print(f"request {request_id} [bold]cancelled[/]")


@handle_errors
def replay(
    app: Annotated[str, typer.Argument(help="The application.")],
    request_id: Annotated[str, typer.Argument(help="A failed or cancelled request.")],
    upgrade: Annotated[
        bool, typer.Option("--upgrade", help="Run on the latest deployed version.")
    ] = False,
    server: Annotated[str | None, typer.Option("--server", "-s", help=SERVER_HELP)] = None,
) -> None:
    """Run a failed or cancelled request again under its id, reusing every recorded output."""
    with client(server) as c:
        result = c.replay(app, request_id, upgrade=upgrade)
    console.print(
        f"request {request_id} replays on version {result['application_version']}: "
        f"cove output {app} {request_id} --wait 60"
    )
