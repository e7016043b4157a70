"""``cove``: run a server, deploy code, invoke applications, read requests."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

app = typer.Typer(
    name="cove",
    help="Cove: durable, autoscaled Python applications.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def server(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8900, help="Port to listen on."),
    data_dir: Path = typer.Option(Path(".cove"), "--data-dir", help="Where the store lives."),
) -> None:
    """Run a Cove server on the embedded store (SQLite in the data folder)."""
    import uvicorn

    from cove.engine.settings import Settings
    from cove.server import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings(host=host, port=port, data_dir=data_dir)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
