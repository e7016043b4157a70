"""Tables of results: rich in a terminal (plain text otherwise), and Markdown for docs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Row:
    """One figure of the table: how to read it from a level's results, and its target."""

    name: str
    get: Callable[[dict[str, Any]], float | None]
    unit: str
    target: float | None = None  # at most this, when the counts are the full ones
    full_only: bool = False  # the target holds for the full counts only

    def value(self, level: dict[str, Any]) -> float | None:
        try:
            return self.get(level)
        except (KeyError, TypeError):
            return None


def rows(items: int, repeats: int) -> list[Row]:
    runs = f"median of {repeats}" if repeats > 1 else "1 run"
    return [
        Row("Round trip p50 (no-arg app, keep-alive)", lambda r: r["round_trip"]["p50_ms"], "ms",
            5),
        Row("Round trip p99", lambda r: r["round_trip"]["p99_ms"], "ms"),
        Row("  server CPU per request", lambda r: r["round_trip"]["server_cpu_ms_per_call"], "ms"),
        Row(f"Map of {items} items, end to end ({runs})", lambda r: r["map"]["median_s"], "s",
            1.0, full_only=True),
        Row("  per item", lambda r: r["map"]["per_call_ms"], "ms"),
        Row("  server CPU per item", lambda r: r["map"]["server_cpu_ms_per_call"], "ms"),
        Row(f"{items} sequential child calls ({runs})", lambda r: r["sequential"]["median_s"], "s",
            1.5, full_only=True),
        Row("  per call", lambda r: r["sequential"]["per_call_ms"], "ms"),
        Row("  server CPU per call", lambda r: r["sequential"]["server_cpu_ms_per_call"], "ms"),
        Row("Server RSS, idle after the runs", lambda r: r["memory"]["server_rss_mb"], "MB", 150),
        Row("Server peak RSS (VmHWM)", lambda r: r["memory"]["server_peak_rss_mb"], "MB"),
        Row("One idle container's RSS", lambda r: r["memory"]["container_rss_mb"], "MB"),
        Row("Containers running / their total RSS",
            lambda r: r["memory"]["containers_rss_total_mb"], "MB"),
        Row("Cold start p50 (decision to ready, forked)", lambda r: r["cold_start"]["p50_ms"],
            "ms", 50),
        Row("Cold start p99", lambda r: r["cold_start"]["p99_ms"], "ms"),
        Row("Burst of concurrent requests (warm 4, max 8): total",
            lambda r: r["burst"]["total_s"], "s"),
        Row("  latency p50", lambda r: r["burst"]["p50_ms"], "ms"),
        Row("  latency p99", lambda r: r["burst"]["p99_ms"], "ms"),
        Row("Cold first call (template + container start)", lambda r: r["cold_first_call_s"],
            "s"),
        Row("Server start until /healthz", lambda r: r["startup_s"], "s"),
    ]  # fmt: skip


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    return f"{value:.1f} {unit}"


def _target(row: Row) -> str:
    return "-" if row.target is None else f"≤ {row.target:g} {row.unit}"


def _verdict(row: Row, value: float | None, quick: bool) -> str:
    if row.target is None or value is None:
        return ""
    if quick and row.full_only:
        return "quick: no target"
    if value <= row.target:
        return "met"
    return f"missed x{value / row.target:.1f}"


def table_data(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    counts = results["counts"]
    quick = results["quick"]
    levels = results["levels"]
    header = ["Figure", "Target"] + [lvl["label"] for lvl in levels]
    body = []
    for row in rows(counts["fanout_items"], counts["repeats"]):
        cells = [row.name, _target(row)]
        for lvl in levels:
            value = row.value(lvl)
            text = _fmt(value, row.unit)
            if row.name.startswith("Containers running"):
                text = f"{lvl.get('memory', {}).get('containers', '-')} / {text}"
            verdict = _verdict(row, value, quick)
            cells.append(f"{text} ({verdict})" if verdict else text)
        body.append(cells)
    return header, body


def machine_lines(machine: dict[str, Any]) -> list[str]:
    return [
        f"Date: {machine['date']}",
        f"Machine: {machine['cores']} cores, {machine['cpu']}, "
        f"{machine['memory_mb']} MB RAM, {machine['platform']}",
        f"Python: {machine['python']}; SQLite {machine['sqlite']}; Cove {machine['cove']}",
        f"Data folder on: {machine['data_filesystem']}",
        f"Load average at start: {machine['load_average_at_start']}",
    ]


def print_report(results: dict[str, Any]) -> None:
    header, body = table_data(results)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text
        for line in machine_lines(results["machine"]):
            print(line)
        widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
        for r in [header, *body]:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
        return
    console = Console()
    if not console.is_terminal:
        console = Console(width=140)
    for line in machine_lines(results["machine"]):
        console.print(line, style="dim", highlight=False)
    title = "Cove benchmarks"
    if results.get("experiment"):
        title += f" (experiment: {results['experiment']})"
    if results["quick"]:
        title += " (--quick)"
    table = Table(title=title)
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i < 2 else "right", no_wrap=i == 0)
    for r in body:
        table.add_row(*r)
    console.print(table)


def markdown(results: dict[str, Any]) -> str:
    header, body = table_data(results)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in body:
        name = "· " + r[0].strip() if r[0].startswith("  ") else r[0]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in [name, *r[1:]]) + " |")
    return "\n".join(lines)
