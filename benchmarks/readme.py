"""The README's Benchmarks section, regenerated from a run's results (``--publish``).

Only the text between ``<!-- benchmarks:begin -->`` and ``<!-- benchmarks:end -->`` is
replaced; the prose around it is kept. ``python -m benchmarks.readme [RESULTS.json]`` prints
that text for a saved run without touching anything.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.report import markdown, reference_summary

BEGIN = "<!-- benchmarks:begin -->"
END = "<!-- benchmarks:end -->"


def section(results: dict[str, Any], plot: Path | None) -> str:
    """The generated part: when and where, the comparison table, its notes and the plot."""
    machine = results["machine"]
    level = results["levels"][0]["synchronous"] if results.get("levels") else "-"
    load = machine["load_average_at_start"]
    lines = [
        f"Measured {machine['date']} on {machine['cores']} cores ({machine['cpu']}, "
        f"{round(machine['memory_mb'] / 1024)} GB RAM, {machine['python']}, SQLite "
        f"{machine['sqlite']}, data on {machine['data_filesystem'].split(' ')[0]}; load "
        f"average {load[0] if load else '?'} at the start), Cove at `synchronous={level}`; "
        f"the whole run took {results.get('total_s', '?')} s. " + reference_summary(results),
    ]
    lines += ["", markdown(results, details=False), ""]
    if plot is not None:
        lines += [f"![Latency of a map against its size]({plot.as_posix()})", ""]
    return "\n".join(lines).strip() + "\n"


def replace_section(text: str, body: str) -> str:
    start = text.find(BEGIN)
    end = text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README.md has no {BEGIN} ... {END} block")
    return text[: start + len(BEGIN)] + "\n" + body + text[end:]


def update_readme(readme: Path, results: dict[str, Any], plot: Path | None) -> None:
    readme.write_text(replace_section(readme.read_text(), section(results, plot)))


if __name__ == "__main__":
    source = (
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results/latest.json"
    )
    print(section(json.loads(source.read_text()), Path("docs/benchmarks-fanout.png")))
