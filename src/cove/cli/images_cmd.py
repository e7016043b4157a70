"""``cove images build FILE.py``: build a file's images ahead of its deploy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cove.cli.output import SERVER_HELP, client, console, handle_errors

app = typer.Typer(help="Build function images ahead of time.", no_args_is_help=True)


@app.command()
@handle_errors
def build(
    path: Annotated[Path, typer.Argument(help="The Python file whose images to build.")],
    server: Annotated[str | None, typer.Option("--server", "-s", help=SERVER_HELP)] = None,
) -> None:
    """Build every image the file's functions use (each once), without deploying."""
    with client(server) as c:
        images = c.build_images(path)
    if not images:
        console.print("the file's functions use no image")
    for image in images:
        console.print(f"image [bold]{image['name']}[/] ({image['hash']}) ready at {image['path']}")
