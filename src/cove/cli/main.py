"""``cove``: run a server, deploy code, invoke applications, read requests.

Each command group lives in its own module (``server_cmd``, ``apps_cmd``,
``requests_cmd``); this module wires them into one typer app.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.text import Text

from cove import __version__
from cove.cli import (
    apps_cmd,
    control_cmd,
    images_cmd,
    keys_cmd,
    logs_cmd,
    requests_cmd,
    run_cmd,
    secrets_cmd,
    server_cmd,
    status_cmd,
)
from cove.cli.output import debug_enabled, describe_error, err_console
from cove.errors import CoveError

app = typer.Typer(
    name="cove",
    help=(
        "Cove: durable, autoscaled Python applications.\n\n"
        "Commands that talk to a server use --server URL, else $COVE_URL, "
        "else http://127.0.0.1:8900."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_SERVER = "Server"
_APPS = "Applications"
_REQUESTS = "Requests"

app.command(rich_help_panel=_SERVER)(server_cmd.server)
app.command(rich_help_panel=_SERVER)(server_cmd.dev)
app.command(rich_help_panel=_APPS)(apps_cmd.deploy)
app.command(rich_help_panel=_APPS)(apps_cmd.apps)
app.command(rich_help_panel=_APPS)(apps_cmd.delete)
app.command(rich_help_panel=_APPS)(status_cmd.status)
app.command(rich_help_panel=_REQUESTS)(requests_cmd.invoke)
app.command(rich_help_panel=_REQUESTS)(requests_cmd.requests)
app.command(rich_help_panel=_REQUESTS)(requests_cmd.request)
app.command(rich_help_panel=_REQUESTS)(requests_cmd.output)
app.command(rich_help_panel=_REQUESTS)(control_cmd.cancel)
app.command(rich_help_panel=_REQUESTS)(control_cmd.replay)
app.command(rich_help_panel=_REQUESTS)(logs_cmd.logs)
app.command(rich_help_panel=_APPS)(run_cmd.run)
app.add_typer(secrets_cmd.app, name="secrets", rich_help_panel=_APPS)
app.add_typer(images_cmd.app, name="images", rich_help_panel=_APPS)
app.add_typer(keys_cmd.app, name="keys", rich_help_panel=_SERVER)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cove {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Cove: durable, autoscaled Python applications."""


def main() -> None:
    """Entry point of the ``cove`` script: no bare tracebacks for expected failures."""
    try:
        app()
    except CoveError as err:
        err_console.print(
            Text("Error: ", style="bold red") + Text(describe_error(err), style="red")
        )
        sys.exit(1)
    except Exception as err:
        if debug_enabled():
            raise
        err_console.print(
            Text("Error: ", style="bold red")
            + Text(f"unexpected {type(err).__name__}: {err}", style="red")
            + Text("\n(set COVE_DEBUG=1 to see the traceback)", style="dim")
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
