"""``cove secrets set|list|delete``: secrets that functions get as environment variables.

A value is read from stdin (a hidden prompt on a terminal), never from the command line,
where it would end up in shell history and in every process listing.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.text import Text

from cove.cli.output import SERVER_HELP, client, console, fail, handle_errors, new_table

app = typer.Typer(
    help=(
        "Secrets, encrypted on the server. A function gets, as environment variables, "
        'only those it lists: @function(secrets=["OPENAI_API_KEY"]).'
    ),
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def read_value(name: str) -> str:
    """The secret's value: a hidden prompt on a terminal, else stdin less one trailing
    newline (so ``echo VALUE | cove secrets set NAME`` stores ``VALUE``)."""
    if sys.stdin is None:
        fail(f"no value for {name}: pipe it on stdin")
    if sys.stdin.isatty():
        value: str = typer.prompt(f"Value of {name}", hide_input=True)
        return value
    value = sys.stdin.read()
    if value.endswith("\r\n"):
        return value[:-2]
    if value.endswith("\n"):
        return value[:-1]
    return value


@app.command("set")
@handle_errors
def set_(
    name: Annotated[str, typer.Argument(help="The secret's name, e.g. OPENAI_API_KEY.")],
    server: Annotated[str | None, typer.Option("--server", "-s", help=SERVER_HELP)] = None,
) -> None:
    """Create or replace a secret; its value is read from stdin (prompted on a terminal)."""
    value = read_value(name)
    if not value:
        fail(f"empty value for {name}: pipe the value on stdin (printf %s VALUE | ...)")
    with client(server) as c:
        c.set_secret(name, value)
    console.print(Text.assemble("secret ", (name, "bold"), " set"))


@app.command("list")
@handle_errors
def list_(
    server: Annotated[str | None, typer.Option("--server", "-s", help=SERVER_HELP)] = None,
) -> None:
    """List the names of the secrets (never their values)."""
    with client(server) as c:
        names = c.secrets()
    if not names:
        console.print("no secrets (set one with: cove secrets set NAME)")
        return
    table = new_table()
    table.add_column("name", no_wrap=True)
    for name in names:
        table.add_row(Text(name, style="bold"))
    console.print(table)


@app.command("delete")
@handle_errors
def delete(
    name: Annotated[str, typer.Argument(help="The secret to delete.")],
    server: Annotated[str | None, typer.Option("--server", "-s", help=SERVER_HELP)] = None,
) -> None:
    """Delete a secret. Containers already running keep the value they started with."""
    with client(server) as c:
        c.delete_secret(name)
    console.print(Text.assemble("secret ", (name, "bold"), " deleted"))
