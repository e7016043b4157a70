"""``cove deploy``, ``cove apps`` and ``cove delete``: applications on a server."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from cove.cli.output import (
    SERVER_HELP,
    apps_table,
    client,
    console,
    describe_error,
    err_console,
    handle_errors,
    print_deployed,
    warn,
)
from cove.errors import CoveError
from cove.paths import absolute_path
from cove.sdk.client import Client

# ``@application(...)`` or ``@cove.application(...)`` at the start of a line.
_DEFINES_APP = re.compile(r"^\s*@\s*(?:[A-Za-z_][\w.]*\.)?application\b", re.MULTILINE)


def defines_application(path: Path) -> bool:
    """Whether a .py file looks like it defines an application (an ``@application`` line)."""
    try:
        return bool(_DEFINES_APP.search(path.read_text(encoding="utf-8", errors="replace")))
    except OSError:
        return False


def files_to_deploy(path: Path) -> list[Path]:
    """The .py files that ``path`` stands for: itself, or a folder's application files."""
    if path.is_dir():
        return [
            p
            for p in sorted(path.glob("*.py"))
            if p.is_file() and not p.name.startswith(("_", "test_")) and defines_application(p)
        ]
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.suffix != ".py":
        raise CoveError(f"{path}: only Python files (.py) can be deployed")
    return [path]


def deploy_paths(c: Client, paths: list[Path]) -> int:
    """Deploy every file ``paths`` stand for, printing each result; returns the failures.

    A failing file gets a warning and the others are still deployed.
    """
    failures = 0
    for given in paths:
        try:
            files = files_to_deploy(given)
        except (CoveError, OSError) as err:
            warn(describe_error(err) if isinstance(err, CoveError) else str(err))
            failures += 1
            continue
        if given.is_dir() and not files:
            warn(f"{given}: no .py file in it defines an application")
        for path in files:
            try:
                result = c.deploy(path)
            except (CoveError, OSError) as err:
                why = describe_error(err) if isinstance(err, CoveError) else str(err)
                warn(f"could not deploy {path}: {why}")
                failures += 1
                continue
            print_deployed(result.get("applications", []), source=str(path))
    return failures


@handle_errors
def deploy(
    path: Annotated[
        Path,
        typer.Argument(help="The Python file to deploy (a folder: each of its application files)."),
    ],
    server: Annotated[str | None, typer.Option("--server", "-s", help=SERVER_HELP)] = None,
) -> None:
    """Deploy a Python file: each application in it gets a new version.

    The file's whole folder ships with it, so modules and packages beside it import
    normally; left out: what its .gitignore ignores, virtual environments, caches, .git
    and Cove's data folders (at most 10 MiB)."""
    path = absolute_path(path)  # as typed, from the directory the command runs in
    with client(server, timeout=180.0) as c:
        if path.is_dir():
            if deploy_paths(c, [path]):
                raise typer.Exit(1)
            return
        files = files_to_deploy(path)
        with err_console.status(f"Deploying {path} to {c.url} …"):
            result: dict[str, Any] = c.deploy(files[0])
        print_deployed(result.get("applications", []), source=str(path))


@handle_errors
def apps(
    server: Annotated[str | None, typer.Option("--server", "-s", help=SERVER_HELP)] = None,
) -> None:
    """List the deployed applications (latest versions)."""
    with client(server) as c:
        found = c.applications()
    if not found:
        console.print("No applications deployed. Deploy one with `cove deploy FILE.py`.")
        return
    console.print(apps_table(found))


@handle_errors
def delete(
    app: Annotated[str, typer.Argument(help="The application to delete.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    server: Annotated[str | None, typer.Option("--server", "-s", help=SERVER_HELP)] = None,
) -> None:
    """Delete an application: cancels its running requests and removes its history."""
    if not yes and sys.stdin.isatty():
        typer.confirm(
            f"Delete application {app!r}, cancel its running requests and remove its history?",
            abort=True,
        )
    with client(server) as c:
        c.delete_application(app)
    console.print(Text("Deleted application ") + Text(app, style="bold") + Text("."))
