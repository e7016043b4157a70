"""``cove run FILE APP [ARGS...]``: run an application in this process, without a server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from cove.cli.output import console, describe_error, err_console, fail, handle_errors, print_json
from cove.cli.requests_cmd import ArgOption, FileOption, read_file_argument, split_named
from cove.errors import RequestFailed
from cove.sdk.codec import application_signature
from cove.sdk.decorators import registered_functions
from cove.sdk.file import File
from cove.sdk.function import Function
from cove.sdk.http import HttpBody
from cove.sdk.local import run_local_application
from cove.sdk.manifest import load_module
from cove.sdk.tensorlake_alias import install


def _value(raw: str) -> Any:
    """A command-line value: its JSON meaning when it parses, else the string itself."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _body(raw: str) -> HttpBody:
    """A command-line value for an ``HttpBody`` parameter: its text as the body, JSON when
    it parses as JSON, else plain text."""
    try:
        json.loads(raw)
    except ValueError:
        return HttpBody(raw.encode(), "text/plain")
    return HttpBody(raw.encode(), "application/json")


def _application(path: Path, app: str) -> Function:
    path = path.expanduser().resolve()
    if not path.is_file():
        fail(f"{path} is not a file")
    install()  # before the file's imports: `tensorlake.applications` is Cove's
    module = load_module(path)
    functions = registered_functions(module.__name__)
    apps = sorted(name for name, fn in functions.items() if fn.application is not None)
    fn = functions.get(app)
    if fn is None or fn.application is None:
        found = ", ".join(apps) if apps else "none"
        fail(f"{path.name} has no application {app!r} (its applications: {found})")
    return fn


@handle_errors
def run(
    file: Annotated[Path, typer.Argument(help="The Python file that defines the application.")],
    app: Annotated[str, typer.Argument(help="The application to run.")],
    args: Annotated[
        list[str] | None,
        typer.Argument(
            help="Positional arguments, each JSON (else a string): 42, '\"text\"', '[1, 2]'.",
            show_default=False,
        ),
    ] = None,
    arg: ArgOption = None,
    file_arg: FileOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write a File output to this path.")
    ] = None,
) -> None:
    """Run an application in this process, without a server, and print its output.

    The file is imported as Cove's code loader imports it on a server (its
    ``tensorlake.applications`` imports served by Cove) and the application runs on the
    local runner (``run_local_application``): every call in this process, with the same
    semantics. Prints the output as ``cove invoke --wait`` does; a failed request exits 1.
    An ``HttpBody`` parameter gets the value's text as the body (``application/json`` when
    it parses as JSON, else ``text/plain``).
    """
    fn = _application(file, app)
    params = [p.name for p in application_signature(fn).parameters]
    raw_bodies = {p.name for p in application_signature(fn).parameters if p.hint is HttpBody}
    positional = [
        _body(v) if i < len(params) and params[i] in raw_bodies else _value(v)
        for i, v in enumerate(args or [])
    ]
    kwargs: dict[str, Any] = {}
    for raw in arg or []:
        name, value = split_named("--arg", raw)
        if name in kwargs:
            fail(f"argument {name!r} is given more than once")
        kwargs[name] = _body(value) if name in raw_bodies else _value(value)
    for raw in file_arg or []:
        name, where = split_named("--file", raw)
        if name in kwargs:
            fail(f"argument {name!r} is given more than once")
        _, content, content_type = read_file_argument(name, where)
        kwargs[name] = File(content, content_type)
    request = run_local_application(fn, *positional, **kwargs)
    try:
        output = request.output()
    except RequestFailed as err:
        fail(f"request {request.id} failed: {describe_error(err)}")
    _print(fn, output, out)


def _print(fn: Function, output: Any, out: Path | None) -> None:
    if isinstance(output, File):
        if out is None:
            console.print(
                f"File output: {output.size} bytes, content type "
                f"{escape(output.content_type)} (pass --out PATH to save it)"
            )
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(output.content)
        err_console.print(
            f"Wrote {output.size} bytes ({escape(output.content_type)}) to {escape(str(out))}"
        )
        return
    adapter = application_signature(fn).return_adapter
    print_json(json.loads(adapter.dump_json(output)))
