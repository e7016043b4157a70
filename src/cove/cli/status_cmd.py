"""``cove status APP``: each function's pool: containers, calls, queue, cold starts."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cove.cli.output import SERVER_HELP, client, console, handle_errors, new_table


def _containers(row: dict[str, Any]) -> str:
    counts: dict[str, int] = {}
    for container in row["containers"]:
        counts[container["state"]] = counts.get(container["state"], 0) + 1
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "none"


def _bounds(row: dict[str, Any]) -> str:
    return (
        f"min {row['min_containers']}, max {row['max_containers']}, "
        f"warm {row['warm_containers']}, x{row['max_concurrency']}"
    )


@handle_errors
def status(
    app: Annotated[str, typer.Argument(help="The application.")],
    server: Annotated[str | None, typer.Option("--server", "-s", help=SERVER_HELP)] = None,
) -> None:
    """Show each function's containers, calls in flight and queued, and cold starts."""
    with client(server) as c:
        data = c.functions(app)
    table = new_table(f"{app} (version {data['version']})")
    for column in (
        "function",
        "version",
        "containers",
        "in flight",
        "queued",
        "cold starts",
        "cold start p50",
        "bounds",
    ):
        table.add_column(column)
    for row in data["functions"]:
        p50 = row["cold_start_seconds"]["p50"]
        table.add_row(
            row["function"] + (" (retired)" if row["retired"] else ""),
            str(row["version"]),
            _containers(row),
            str(row["in_flight"]),
            str(row["queued"]),
            str(row["cold_starts"]),
            "-" if p50 is None else f"{p50 * 1000:.0f} ms",
            _bounds(row),
        )
    console.print(table)
