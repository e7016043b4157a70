"""Shared printing and error handling for the ``cove`` commands."""

from __future__ import annotations

import functools
import json
import os
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from cove.errors import CoveError, RequestFailed, UnavailableError
from cove.sdk.client import Client


def _width(stream: Any) -> int | None:
    """Rich's width: the terminal's; when piped, wide enough not to squeeze the tables."""
    try:
        if stream.isatty() or os.environ.get("COLUMNS"):
            return None
    except (AttributeError, ValueError):
        pass
    return 160


console = Console(highlight=False, soft_wrap=True, width=_width(sys.stdout))
err_console = Console(stderr=True, highlight=False, soft_wrap=True, width=_width(sys.stderr))

P = ParamSpec("P")
R = TypeVar("R")

SERVER_HELP = "Cove server URL (default: $COVE_URL, else http://127.0.0.1:8900)."

#: Exit code of ``cove output`` / ``cove invoke`` when the request has not finished yet.
EXIT_PENDING = 2


# -- errors -------------------------------------------------------------------------------
def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``message`` as an error on stderr and exit with ``code``."""
    err_console.print(Text("Error: ", style="bold red") + Text(message, style="red"))
    raise typer.Exit(code)


def warn(message: str) -> None:
    err_console.print(Text("Warning: ", style="bold yellow") + Text(message, style="yellow"))


def describe_error(err: CoveError) -> str:
    """One readable line for an error, naming the function that failed when known."""
    message = err.message.strip() or type(err).__name__
    if isinstance(err, UnavailableError) and "cannot reach" in message:
        message += " (start one with `cove server`, or pass --server / set COVE_URL)"
    function_name = err.details.get("function_name")
    if function_name and str(function_name) not in message:
        message = f"function {function_name}: {message}"
    return message


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command so Cove and HTTP errors end it with a message and exit 1, no traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except CoveError as err:
            fail(describe_error(err))
        except httpx.HTTPError as err:
            fail(f"HTTP error: {err}")
        except OSError as err:
            fail(str(err))

    return wrapper


@contextmanager
def client(server: str | None, timeout: float = 60.0) -> Iterator[Client]:
    """A :class:`Client` for ``server`` (or ``COVE_URL``, or the default URL)."""
    c = Client(server, timeout=timeout)
    try:
        yield c
    finally:
        c.close()


# -- values -------------------------------------------------------------------------------
def print_json(value: Any) -> None:
    """Pretty JSON: colored on a terminal, plain (and unwrapped) when piped."""
    if console.is_terminal:
        console.print_json(data=value, ensure_ascii=False)
    else:
        sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
        sys.stdout.flush()


def print_output(response: httpx.Response, out: Path | None) -> None:
    """Print a finished request's output (JSON), or save / describe a File output."""
    content_type = response.headers.get("content-type", "application/octet-stream")
    if content_type.startswith("application/json") and out is None:
        print_json(json.loads(response.content) if response.content else None)
        return
    size = len(response.content)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(response.content)
        err_console.print(f"Wrote {size} bytes ({escape(content_type)}) to {escape(str(out))}")
        return
    console.print(
        f"File output: {size} bytes, content type {escape(content_type)} "
        "(pass --out PATH to save it)"
    )


def request_failed(err: RequestFailed) -> NoReturn:
    """Report a failed request: which function failed and why; exit 1."""
    fail(describe_error(err))


# -- tables -------------------------------------------------------------------------------
STATUS_STYLE = {
    "pending": "yellow",
    "running": "cyan",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "magenta",
}


def status_text(status: str | None) -> Text:
    value = status or "-"
    return Text(value, style=STATUS_STYLE.get(value, ""))


def short_time(value: str | None, time_only: bool = False) -> str:
    """An ISO timestamp, shortened for a table cell (``2024-05-01 12:00:00``)."""
    if not value:
        return "-"
    text = value.replace("T", " ")
    return text[11:23] if time_only else text[:19]


def error_summary(error: dict[str, Any] | None, width: int = 80) -> str:
    if not error:
        return ""
    function_name = error.get("function_name")
    message = str(error.get("message") or error.get("reason") or "failed")
    text = f"{function_name}: {message}" if function_name else message
    return text if len(text) <= width else text[: width - 1] + "…"


def new_table(title: str | None = None) -> Table:
    return Table(title=title, header_style="bold", title_justify="left", expand=False)


# -- deploy -------------------------------------------------------------------------------
def example_value(schema: Any, defs: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A plausible JSON value for a JSON schema, for usage examples."""
    if not isinstance(schema, dict) or depth > 6:
        return None
    defs = {**(defs or {}), **schema.get("$defs", {}), **schema.get("definitions", {})}
    if "default" in schema:
        return schema["default"]
    examples = schema.get("examples")
    if isinstance(examples, list) and examples:
        return examples[0]
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = defs.get(ref.rsplit("/", 1)[-1])
        return example_value(target, defs, depth + 1)
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            usable = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
            return example_value((usable or options)[0], defs, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "string":
        formats = {
            "date-time": "2024-01-01T00:00:00Z",
            "date": "2024-01-01",
            "uri": "https://example.com",
        }
        return formats.get(str(schema.get("format")), "text")
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if kind == "array":
        prefix = schema.get("prefixItems")
        if isinstance(prefix, list):
            return [example_value(item, defs, depth + 1) for item in prefix]
        return [example_value(schema.get("items", {}), defs, depth + 1)]
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties")
        if isinstance(properties, dict) and properties:
            return {k: example_value(v, defs, depth + 1) for k, v in properties.items()}
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            return {"key": example_value(extra, defs, depth + 1)}
        return {}
    return "value"


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


#: What a printed curl line uploads for a ``File`` parameter: it works as printed, and the
#: comment under it shows how to send a file from disk instead.
SAMPLE_FILE_TEXT = "Cove keeps notes."


def sample_argument(parameter: dict[str, Any]) -> Any:
    """A valid JSON value for one parameter: its default, else its schema's example, else a
    value of the right type."""
    if "default" in parameter:
        return parameter["default"]
    return example_value(parameter.get("schema", {}))


def curl_example(url: str, parameters: list[dict[str, Any]]) -> str:
    """A curl command that invokes an application and waits for its output, built from its
    parameters so that it runs as printed."""
    target = shlex.quote(f"{url}?wait=30")
    if not parameters:
        return f"curl -X POST {target}"
    if len(parameters) == 1 and not parameters[0].get("is_file"):
        body = _compact(sample_argument(parameters[0]))
        return f"curl -X POST {target} -H 'Content-Type: application/json' -d {shlex.quote(body)}"
    lines = [f"curl -X POST {target}"]
    files = []
    required = [p for p in parameters if p.get("required", True)]
    for p in required or parameters:  # optional ones are left out when others are needed
        name = str(p["name"])
        if p.get("is_file"):
            lines.append(f"-F {shlex.quote(f'{name}={SAMPLE_FILE_TEXT};type=text/plain')}")
            files.append(name)
        else:
            value = _compact(sample_argument(p))
            lines.append(f"-F {shlex.quote(f'{name}={value}')}")
    command = " \\\n    ".join(lines)
    if files:
        uploads = " ".join(f"-F {shlex.quote(f'{n}=@path/to/{n}')}" for n in files)
        command += f"\n# a file from disk instead: {uploads}"
    return command


def _signature(parameters: list[dict[str, Any]]) -> str:
    parts = []
    for p in parameters:
        kind = "File" if p.get("is_file") else _type_name(p.get("schema", {}))
        optional = "" if p.get("required", True) else "?"
        parts.append(f"{p['name']}{optional}: {kind}")
    return ", ".join(parts)


def _type_name(schema: dict[str, Any]) -> str:
    if "title" in schema:
        return str(schema["title"])
    kind = schema.get("type")
    if isinstance(kind, str):
        return kind
    if "anyOf" in schema:
        return " | ".join(_type_name(o) for o in schema["anyOf"] if isinstance(o, dict))
    return "any"


def print_deployed(apps: list[dict[str, Any]], source: str | None = None) -> None:
    """Print each deployed application: name, version, URL and an example curl line."""
    if not apps:
        warn(f"{source or 'the file'} defines no application (nothing to invoke)")
        return
    for app in apps:
        header = Text.assemble(
            ("Deployed ", "green"),
            (str(app["name"]), "bold green"),
            (f" (version {app['version']})", "green"),
        )
        if source:
            header.append(f" from {source}", style="dim")
        console.print(header)
        params = app.get("parameters", [])
        console.print(Text("  URL:    ") + Text(str(app["url"]), style="cyan"), soft_wrap=True)
        if params:
            console.print(Text(f"  Params: {_signature(params)}"), soft_wrap=True)
        console.print(Text("  Invoke:"))
        for line in curl_example(str(app["url"]), params).splitlines():
            console.print(Text("    " + line), soft_wrap=True)


def apps_table(apps: list[dict[str, Any]]) -> Table:
    table = new_table()
    table.add_column("name", no_wrap=True)
    table.add_column("version", justify="right")
    table.add_column("parameters", overflow="fold")
    table.add_column("url", no_wrap=True)
    table.add_column("description", overflow="fold")
    for app in apps:
        table.add_row(
            Text(str(app["name"]), style="bold"),
            str(app["version"]),
            _signature(app.get("parameters", [])) or "-",
            str(app.get("url", "")),
            str(app.get("description") or ""),
        )
    return table


def debug_enabled() -> bool:
    return os.environ.get("COVE_DEBUG", "").lower() in ("1", "true", "yes")
