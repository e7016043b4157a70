"""``cove keys create|list|revoke``: API keys of a server started with ``--auth``.

Through the HTTP API with an admin key (``--server``, ``COVE_API_KEY``), or, with
``--data-dir``, directly on a server's data folder: that is how the first admin key is made
(bootstrap), and it works whether the server runs or not (the store takes writers from
several processes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from cove.cli.output import SERVER_HELP, client, console, handle_errors, new_table, print_json

app = typer.Typer(
    help=(
        "API keys for servers started with --auth. A key belongs to a namespace and has a role: "
        "invoke (call applications, read their requests), deploy (also deploy and delete), "
        "admin (also keys and secrets)."
    ),
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

DATA_DIR_HELP = (
    "Work directly on this server data folder instead of over HTTP (how the first admin key "
    "is made)."
)


@contextmanager
def _offline(data_dir: Path) -> Iterator[Any]:
    from cove.engine.keys import KeyRing
    from cove.engine.settings import Settings
    from cove.store import open_store

    if not (data_dir / "cove.db").exists() and not data_dir.exists():
        data_dir.mkdir(parents=True)
    store = open_store(Settings(data_dir=data_dir).database())
    try:
        yield KeyRing(store)
    finally:
        store.close()


def create_key_offline(
    data_dir: Path, role: str, namespace: str = "default", name: str | None = None
) -> dict[str, Any]:
    """Create a key directly in a data folder; its record with ``key`` (shown once)."""
    with _offline(data_dir) as ring:
        record, token = asyncio.run(ring.create(namespace, role, name))
    return {**record.to_dict(), "key": token}


def count_keys_offline(data_dir: Path) -> int:
    """How many keys (live or revoked) a data folder holds."""
    with _offline(data_dir) as ring:
        count: int = asyncio.run(ring.count())
        return count


@app.command("create")
@handle_errors
def create(
    role: Annotated[str, typer.Option("--role", "-r", help="admin, deploy or invoke.")],
    namespace: Annotated[
        str | None,
        typer.Option("--namespace", "-n", help="The key's namespace (default: the admin's own)."),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="A label for the key.")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help=DATA_DIR_HELP)] = None,
    server: Annotated[str | None, typer.Option("--server", "-s", help=SERVER_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the key as JSON.")] = False,
) -> None:
    """Create a key; it is printed once (the server keeps only its hash)."""
    if data_dir is not None:
        created = create_key_offline(data_dir, role, namespace or "default", name)
    else:
        with client(server) as c:
            created = c.create_key(role, namespace, name)
    if as_json:
        print_json(created)
        return
    console.print(
        Text.assemble(
            "created ",
            (created["role"], "bold"),
            " key ",
            (created["id"], "bold"),
            " of namespace ",
            (created["namespace"], "bold"),
            "; it is shown only now:",
        )
    )
    console.print(created["key"], soft_wrap=True, highlight=False)
    console.print(Text("Use it with: export COVE_API_KEY=<key>", style="dim"))


@app.command("list")
@handle_errors
def list_(
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help=DATA_DIR_HELP)] = None,
    server: Annotated[str | None, typer.Option("--server", "-s", help=SERVER_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The keys (never their secrets): id, namespace, role, name, whether revoked."""
    if data_dir is not None:
        with _offline(data_dir) as ring:
            keys = [k.to_dict() for k in asyncio.run(ring.list(None))]
    else:
        with client(server) as c:
            keys = c.keys()
    if as_json:
        print_json(keys)
        return
    table = new_table()
    for column in ("id", "namespace", "role", "name", "revoked"):
        table.add_column(column)
    for k in keys:
        table.add_row(k["id"], k["namespace"], k["role"], k["name"] or "", str(k["revoked"]))
    console.print(table)


@app.command("revoke")
@handle_errors
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (see `cove keys list`).")],
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help=DATA_DIR_HELP)] = None,
    server: Annotated[str | None, typer.Option("--server", "-s", help=SERVER_HELP)] = None,
) -> None:
    """Revoke a key: it stops working at once."""
    if data_dir is not None:
        with _offline(data_dir) as ring:
            asyncio.run(ring.revoke(key_id, None))
    else:
        with client(server) as c:
            c.revoke_key(key_id)
    console.print(Text.assemble("key ", (key_id, "bold"), " revoked"))
