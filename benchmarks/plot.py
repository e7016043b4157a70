"""The plot of the README: latency of a map against its size, for Cove and the references."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.report import REFERENCE_NAMES, Cell, job_cell

COLORS = {"cove": "#1f77b4", "tensorlake": "#ff7f0e", "dbos": "#2ca02c"}
MAP_TARGETS = {1000: 0.5, 10000: 5.0}


def series(results: dict[str, Any]) -> dict[str, list[tuple[int, Cell]]]:
    """System -> (map size, its latency) for every size measured or time-boxed."""
    sizes = [int(n) for n in results["counts"]["map_sizes"]]
    out: dict[str, list[tuple[int, Cell]]] = {}
    if results.get("levels"):
        maps = results["levels"][0].get("maps", {})
        out["cove"] = [(n, Cell(maps[str(n)]["median_s"])) for n in sizes if str(n) in maps]
    for system, ref in results.get("references", {}).items():
        cells = [(n, job_cell(ref, f"map-{n}")) for n in sizes]
        out[system] = [(n, c) for n, c in cells if c.known]
    return out


def plot(results: dict[str, Any], path: Path) -> Path | None:
    """Write the PNG; None (and nothing written) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    for system, points in series(results).items():
        if not points:
            continue
        name = "Cove" if system == "cove" else REFERENCE_NAMES.get(system, system)
        color = COLORS.get(system)
        xs = [n for n, _ in points]
        ys = [c.value for _, c in points]
        ax.plot(xs, ys, "-", color=color, label=name, linewidth=1.8)
        for n, c in points:
            if c.lower_bound:  # time-boxed: the real latency is higher
                ax.plot([n], [c.value], marker="^", color=color, markersize=9, fillstyle="none")
                ax.annotate(f"> {c.value:.0f} s (time-boxed)", (n, c.value),
                            textcoords="offset points", xytext=(6, 6), fontsize=8,
                            color=color)  # fmt: skip
            else:
                ax.plot([n], [c.value], marker="o", color=color, markersize=5)
    targets = [(n, t) for n, t in MAP_TARGETS.items() if n in results["counts"]["map_sizes"]]
    if targets:
        ax.plot([n for n, _ in targets], [t for _, t in targets], "k--", linewidth=1,
                label="target for Cove")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("items in the map (fan-out size)")
    ax.set_ylabel("end-to-end latency (s)")
    machine = results["machine"]
    ax.set_title(
        f"Map of a trivial function: latency vs fan-out size\n"
        f"{machine['date']}, {machine['cores']} cores {machine['cpu']}",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
