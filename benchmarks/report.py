"""Tables of results: the comparison (Cove against the reference systems, with the issue's
targets), Cove's details per SQLite level; rich in a terminal, plain text otherwise, and
Markdown for the README and docs."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

TIMES = "\N{MULTIPLICATION SIGN}"  # in a computed target's basis: "0.5 x DBOS"
REFERENCE_NAMES = {"tensorlake": "tensorlake local runner", "dbos": "DBOS (SQLite)"}


@dataclass(frozen=True)
class Cell:
    """One measured value: missing, a lower bound (time-boxed), or skipped with a reason."""

    value: float | None = None
    lower_bound: bool = False
    note: str | None = None  # why there is no value

    @property
    def known(self) -> bool:
        return self.value is not None and not math.isnan(self.value)


Results = dict[str, Any]


@dataclass(frozen=True)
class Target:
    """A limit, or how to compute one from the run's results (a reference's figure, a
    baseline measured on the same machine); ``basis`` names what it was computed from."""

    limit: float | Callable[[Results], float | None]
    higher_is_better: bool = False
    basis: str = ""  # e.g. "0.5 x DBOS" (with TIMES): shown before the computed value

    def resolve(self, results: Results) -> Target | None:
        """This target with its limit computed from ``results``; None if it cannot be."""
        if not callable(self.limit):
            return self
        value = self.limit(results)
        if value is None or math.isnan(value):
            return None
        return Target(float(value), self.higher_is_better, self.basis)

    def text(self, unit: str) -> str:
        if callable(self.limit):
            return "-"
        sign = "≥" if self.higher_is_better else "≤"
        if self.basis:
            return f"{sign} {self.basis} = {_fmt(self.limit, unit)}"
        return f"{sign} {_fmt(self.limit, unit)}"


@dataclass(frozen=True)
class Row:
    """One line of the comparison: how to read it from Cove's and a reference's results."""

    name: str
    unit: str
    cove: Callable[[dict[str, Any]], Cell]
    reference: Callable[[dict[str, Any]], Cell] | None = None  # None: Cove only
    target: Target | None = None
    why: str = ""  # what a miss comes from, printed when the target is missed
    compare: bool = True  # a "Cove vs" ratio makes sense (times and rates, not memory)


# -- reading results ------------------------------------------------------------------------
def _get(data: dict[str, Any], *path: str) -> Cell:
    value: Any = data
    try:
        for key in path:
            value = value[key]
    except (KeyError, TypeError, IndexError):
        return Cell()
    return Cell(float(value)) if isinstance(value, int | float) else Cell()


def job_cell(ref: dict[str, Any], key: str, field: str = "median_s", scale: float = 1.0) -> Cell:
    """A reference job's figure: measured, time-boxed (a lower bound) or skipped."""
    if ref.get("error"):
        return Cell(note=f"failed: {ref['error']}")
    job = ref.get("jobs", {}).get(key)
    if job is None:
        return Cell()
    if job.get("error"):
        return Cell(note=f"failed: {job['error']}")
    if job.get("skipped"):
        return Cell(note=f"skipped: {job['skipped']}")
    if job.get(field) is not None:
        return Cell(job[field] * scale)
    if job.get("time_boxed"):
        bound = max(job.get("lower_bound_s") or 0.0, ref.get("time_box_s") or 0.0)
        return Cell(bound * scale, lower_bound=True, note="time-boxed")
    return Cell()


def _growth(small: Cell, big: Cell) -> Cell:
    if not (small.known and big.known) or small.lower_bound:
        return Cell()
    assert small.value is not None and big.value is not None
    return Cell(big.value / small.value, lower_bound=big.lower_bound)


def _reference_peak(ref: dict[str, Any]) -> Cell:
    peaks = [j["peak_rss_mb"] for j in ref.get("jobs", {}).values() if j.get("peak_rss_mb")]
    return Cell(max(peaks)) if peaks else Cell()


def _dbos_noop_p50(results: Results) -> float | None:
    """DBOS's no-arg p50 in this run (ms), if it ran and measured it."""
    dbos = results.get("references", {}).get("dbos")
    cell = job_cell(dbos, "noop", "p50_ms") if dbos else Cell()
    return cell.value if cell.known and not cell.lower_bound else None


def _wal_commits_s(factor: float, n: int) -> Callable[[Results], float | None]:
    """``factor`` times the time of ``n`` SQLite WAL commits at synchronous=FULL (s), one commit
    as measured in this run on the judged level's data folder's file system."""

    def limit(results: Results) -> float | None:
        levels = results.get("levels") or [{}]
        cell = _get(levels[0], "wal_commit", "full_ms")
        return factor * n * cell.value / 1000 if cell.value is not None and cell.known else None

    return limit


HOT_PATH = "see docs/benchmarks.md, The hot path"
#: Why a server CPU row is missed (the footnote reads "missed because <why>.").
CPU_WHY = (
    "what is left is spread over many small steps of one Python process (HTTP parsing and "
    "the Guard, the request's and each call's journal rows and events, frames to and from "
    f"containers, two threads handing work over); no single step stands out ({HOT_PATH})"
)


def comparison_rows(counts: dict[str, Any]) -> list[Row]:
    """The comparison's rows for these counts: issue #17's targets, which hold at the issue's
    sizes only (1,000 calls, maps of 1,000 and 10,000, 64 clients, a burst of 200)."""
    items = counts["fanout_items"]
    sizes = [int(n) for n in counts["map_sizes"]]
    full = items == 1000
    no_ref = None
    rows = [
        Row("No-arg application round trip, p50 (Cove: over HTTP)", "ms",
            lambda c: _get(c, "round_trip", "p50_ms"),
            lambda r: job_cell(r, "noop", "p50_ms"),
            Target(lambda res: _half(_dbos_noop_p50(res)), basis=f"0.5 {TIMES} DBOS"),
            "the answer follows one commit at synchronous=FULL (a WAL commit is 0.3-0.6 ms "
            "here), a round trip to the container process and the server's CPU per request, "
            "on 2 cores shared with the client; DBOS calls in-process; " + HOT_PATH),
        Row("Server CPU per no-arg request", "ms",
            lambda c: _get(c, "round_trip", "server_cpu_ms_per_call"), no_ref, Target(0.5),
            CPU_WHY),
    ]  # fmt: skip
    for n in sizes:
        rows.append(
            Row(f"Map over {n:,} items of a trivial function", "s",
                lambda c, n=n: _get(c, "maps", str(n), "median_s"),
                lambda r, n=n: job_cell(r, f"map-{n}"),
                Target(2.0) if n == 10000 else None,
                "each item is a journaled call sent to a container and answered over a "
                "pipe: the server's CPU per item and the containers' (a thread hand-off, "
                "unpickling and pickling per call) share 2 cores; " + HOT_PATH)
        )  # fmt: skip
    if 1000 in sizes:
        rows.append(
            Row("Server CPU per map item (map of 1,000)", "ms",
                lambda c: _get(c, "maps", "1000", "server_cpu_ms_per_call"), no_ref,
                Target(0.15), CPU_WHY)
        )  # fmt: skip
    if 1000 in sizes and 10000 in sizes:
        rows.append(
            Row("Map growth 1,000 → 10,000 items (10x is linear)", "x",
                lambda c: _growth(_get(c, "maps", "1000", "median_s"),
                                  _get(c, "maps", "10000", "median_s")),
                lambda r: _growth(job_cell(r, "map-1000"), job_cell(r, "map-10000")))
        )  # fmt: skip
    burst = counts.get("burst_requests", 200)
    clients = counts["throughput_clients"]
    rows += [
        Row(f"{items:,} sequential blocking child calls", "s",
            lambda c: _get(c, "sequential", "median_s"),
            lambda r: job_cell(r, f"sequential-{items}"),
            Target(_wal_commits_s(1.2, items), basis=f"1.2 {TIMES} {items:,} WAL commits")
            if full else None,
            "besides its commit (the fsync the target allows), each child call crosses four "
            "process or thread wake-ups (parent to server, server to child, child to server, "
            "commit to parent) that no commit can overlap; " + HOT_PATH),
        Row("Server CPU per sequential child call", "ms",
            lambda c: _get(c, "sequential", "server_cpu_ms_per_call"), no_ref,
            Target(0.25) if full else None, CPU_WHY),
        Row(f"Fan-out/fan-in of {items:,} calls, then a reduce", "s",
            lambda c: _get(c, "fanout", "median_s"),
            lambda r: job_cell(r, f"fanout-{items}"),
            Target(0.3) if full else None,
            "every call is a separate request to the scheduler, journaled and sent to a "
            "container: 1,000 calls at the server's and the containers' CPU per call; "
            + HOT_PATH),
        Row(f"Burst (warm 4, max 8, {burst:,} requests), p99", "ms",
            lambda c: _get(c, "burst", "p99_ms"), no_ref,
            Target(1000.0) if burst == 200 else None,
            "200 calls of 50 ms, at most 8 at a time (max 8, one call each), take 25 rounds "
            "of 50 ms, 1.25 s, however fast the server: a request's latency is mostly its "
            "wait in the queue behind the others, and the p99 stays under 1 s only when the "
            "client threads' arrivals spread over a quarter of a second or more; " + HOT_PATH),
        Row("Container cold start, p50 (decision to ready)", "ms",
            lambda c: _get(c, "cold_start", "p50_ms"), no_ref, Target(50.0),
            "a container process starts, imports cove and the user's module"),
        Row("Container cold start, p99", "ms", lambda c: _get(c, "cold_start", "p99_ms")),
        Row("Warm start (first request on an idle warm container), p50", "ms",
            lambda c: _get(c, "cold_start", "warm_p50_ms")),
        Row(f"Throughput, no-arg app, {clients} HTTP clients", "req/s",
            lambda c: _get(c, "throughput", "requests_per_s"), no_ref,
            Target(2000.0, higher_is_better=True) if clients == 64 else None,
            "the server's CPU per request bounds it on 2 cores shared with the clients; "
            + HOT_PATH),
        Row("Server RSS, idle after its first request", "MB",
            lambda c: _get(c, "memory_before", "server_rss_mb"), no_ref),
        Row("Server RSS, idle after the runs", "MB",
            lambda c: _get(c, "memory", "server_rss_mb"), no_ref, Target(100.0),
            "the server keeps memory it grew to while the 10,000-item map held its calls in "
            "flight: its live Python objects are back to their size before it (tracemalloc), "
            "but CPython's allocator keeps every 1 MiB arena that still holds one live object: "
            "after the map and 400 requests, 79 arenas against 45 before it, 33 MB of them "
            "empty pools, kept by a few thousand objects made since the map began (with the "
            "caches of finished requests cut to a tenth, 1,445 objects still kept 70); "
            "PYTHONMALLOC=malloc gives it back (101 MB) at 20 % more CPU per call; "
            + HOT_PATH),
        Row("Peak RSS (Cove: server VmHWM; others: their one process)", "MB",
            lambda c: _get(c, "memory", "server_peak_rss_mb"), _reference_peak, compare=False),
        Row("One idle container's RSS", "MB",
            lambda c: _get(c, "memory", "container_rss_mb"), no_ref, Target(40.0),
            "a container imports cove (pydantic, cloudpickle, httpx) and the user's module"),
    ]  # fmt: skip
    return rows


def _half(value: float | None) -> float | None:
    return None if value is None else value * 0.5


# -- judging and formatting -----------------------------------------------------------------
def _fmt(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "-"
    if unit == "ms":
        return f"{value:.2f} ms" if value < 100 else f"{value:,.0f} ms"
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:,.1f} s"
    if unit == "x":
        return f"{value:.1f}x"
    if unit == "req/s":
        return f"{value:,.0f} req/s"
    return f"{value:,.1f} {unit}"


def cell_text(cell: Cell, unit: str) -> str:
    if cell.note and cell.note.startswith(("skipped", "failed")):
        return cell.note.split(":")[0]
    if not cell.known:
        return "-"
    text = _fmt(cell.value, unit)
    return f"> {text} (time-boxed)" if cell.lower_bound else text


def ratio(cove: Cell, other: Cell, higher_is_better: bool = False) -> str:
    """How many times better Cove is than ``other`` (its time over Cove's, or the reverse)."""
    if not (cove.known and other.known) or cove.lower_bound:
        return "-"
    assert cove.value is not None and other.value is not None
    if cove.value <= 0 or other.value <= 0:
        return "-"
    times = cove.value / other.value if higher_is_better else other.value / cove.value
    text = f"{times:,.1f}x" if times < 100 else f"{times:,.0f}x"
    if other.lower_bound:
        return f"> {text} faster"
    return f"{text} faster" if times >= 1 else f"{text} (slower)"


def verdict(cell: Cell, target: Target | None, unit: str) -> str:
    """``met`` or ``missed by <amount> (x<factor>)``; empty without a target or a value."""
    if target is None or callable(target.limit) or not cell.known:
        return ""
    assert cell.value is not None
    value, limit = cell.value, target.limit
    if target.higher_is_better:
        if value >= limit:
            return "met"
        return f"missed by {_fmt(limit - value, unit)} (x{value / limit:.2f})"
    if value <= limit and not cell.lower_bound:
        return "met"
    return f"missed by {_fmt(value - limit, unit)} (x{value / limit:.1f})"


def comparison_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, rows, and footnotes (skip reasons, and why each missed target is missed)."""
    levels = results.get("levels") or [{}]
    refs: dict[str, dict[str, Any]] = results.get("references", {})
    systems = [s for s in REFERENCE_NAMES if s in refs]
    cove_label = "Cove" + (f" {levels[0].get('synchronous', '')}" if len(levels) > 1 else "")
    header = ["Workload", "Target", cove_label]
    header += [f"Cove {lvl.get('synchronous', '')}" for lvl in levels[1:]]
    header += [REFERENCE_NAMES[s] for s in systems]
    header += [f"Cove vs {REFERENCE_NAMES[s].split()[0]}" for s in systems]
    header += ["Target met?" if len(levels) == 1 else f"Target met? ({levels[0]['synchronous']})"]
    body: list[list[str]] = []
    skips: list[str] = []
    misses: list[str] = []
    for row in comparison_rows(results["counts"]):
        target = row.target.resolve(results) if row.target else None
        cove_cells = [row.cove(lvl) for lvl in levels]
        cells = [row.name, target.text(row.unit) if target else "-"]
        cells += [cell_text(c, row.unit) for c in cove_cells]
        ref_cells = {}
        for s in systems:
            ref_cells[s] = row.reference(refs[s]) if row.reference else Cell(note="n/a")
            cells.append(cell_text(ref_cells[s], row.unit) if row.reference else "n/a")
            note = ref_cells[s].note
            if note and note.startswith("failed") and refs[s].get("error"):
                if not any(x.startswith(f"{REFERENCE_NAMES[s]} could not run") for x in skips):
                    skips.append(f"{REFERENCE_NAMES[s]} could not run: {refs[s]['error']}.")
            elif note and note.startswith("failed"):
                skips.append(f"{REFERENCE_NAMES[s]} failed the {_lower_first(row.name)}: "
                             f"{note.removeprefix('failed: ')}.")  # fmt: skip
            elif note and note.startswith("skipped"):
                reason = note.removeprefix("skipped: ")
                skips.append(
                    f"{REFERENCE_NAMES[s]} skipped the {_lower_first(row.name)}: {reason}."
                )
        higher = bool(row.target and row.target.higher_is_better)
        cells += [ratio(cove_cells[0], ref_cells[s], higher) if row.compare else "-"
                  for s in systems]  # fmt: skip
        judged = verdict(cove_cells[0], target, row.unit)
        if judged and results.get("quick"):
            judged += " (--quick)"
        cells.append(judged or "-")
        if judged.startswith("missed") and row.why:
            misses.append(f"{row.name}: missed because {row.why}.")
        body.append(cells)
    return header, body, skips + misses


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


Getter = Callable[[dict[str, Any]], Cell]


def detail_rows(items: int, repeats: int, idle: float) -> list[tuple[str, Getter, str]]:
    """Cove's own figures, one column per SQLite synchronous level."""
    runs = f"median of {repeats}" if repeats > 1 else "1 run"
    return [
        ("Round trip p50 (no-arg app, keep-alive)", lambda r: _get(r, "round_trip", "p50_ms"),
         "ms"),
        ("Round trip p99", lambda r: _get(r, "round_trip", "p99_ms"), "ms"),
        ("  server CPU per request",
         lambda r: _get(r, "round_trip", "server_cpu_ms_per_call"), "ms"),
        (f"Map of {items} items ({runs}): server CPU per item",
         lambda r: _get(r, "maps", str(items), "server_cpu_ms_per_call"), "ms"),
        (f"{items} sequential child calls ({runs}): per call",
         lambda r: _get(r, "sequential", "per_call_ms"), "ms"),
        ("  server CPU per call", lambda r: _get(r, "sequential", "server_cpu_ms_per_call"), "ms"),
        (f"Fan-out of {items} + reduce: server CPU per call",
         lambda r: _get(r, "fanout", "server_cpu_ms_per_call"), "ms"),
        ("Throughput latency p50", lambda r: _get(r, "throughput", "p50_ms"), "ms"),
        ("Throughput latency p99", lambda r: _get(r, "throughput", "p99_ms"), "ms"),
        ("  load clients' CPU per request (their own process)",
         lambda r: _get(r, "throughput", "clients_cpu_ms_per_request"), "ms"),
        ("  load clients' CPU in the measured window",
         lambda r: _get(r, "throughput", "clients_cpu_s"), "s"),
        ("Burst of concurrent requests (warm 4, max 8): total",
         lambda r: _get(r, "burst", "total_s"), "s"),
        ("  latency p99", lambda r: _get(r, "burst", "p99_ms"), "ms"),
        ("Containers running at the end / their total RSS",
         lambda r: _get(r, "memory", "containers_rss_total_mb"), "MB"),
        (f"  after the container idle timeout ({idle:g} s) / their RSS",
         lambda r: _get(r, "memory_idle", "containers_rss_total_mb"), "MB"),
        ("  server RSS then", lambda r: _get(r, "memory_idle", "server_rss_mb"), "MB"),
        ("Cold first call (template + container start)", lambda r: _get(r, "cold_first_call_s"),
         "s"),
        ("Server start until /healthz", lambda r: _get(r, "startup_s"), "s"),
        ("One SQLite WAL commit, synchronous=FULL (stdlib sqlite3, same file system)",
         lambda r: _get(r, "wal_commit", "full_ms"), "ms"),
        ("  its CPU", lambda r: _get(r, "wal_commit", "full_cpu_ms"), "ms"),
        ("One SQLite WAL commit, synchronous=NORMAL",
         lambda r: _get(r, "wal_commit", "normal_ms"), "ms"),
        ("  its CPU", lambda r: _get(r, "wal_commit", "normal_cpu_ms"), "ms"),
    ]  # fmt: skip


#: Detail rows (by their name's start) that show a container count before the RSS, and the
#: memory reading it comes from.
_CONTAINER_COUNTS = (
    ("Containers running", "memory"),
    ("  after the container idle timeout", "memory_idle"),
)


def detail_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    counts = results["counts"]
    levels = results["levels"]
    header = ["Cove figure"] + [lvl["label"] for lvl in levels]
    body = []
    for name, get, unit in detail_rows(
        counts["fanout_items"], counts["repeats"], counts.get("idle_timeout_s", 300.0)
    ):
        cells = [name]
        for lvl in levels:
            text = cell_text(get(lvl), unit)
            counted = next((k for p, k in _CONTAINER_COUNTS if name.startswith(p)), None)
            if counted is not None:  # "<containers> / <their RSS>"
                text = f"{lvl.get(counted, {}).get('containers', '-')} / {text}"
            cells.append(text)
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


def reference_summary(results: dict[str, Any]) -> str:
    """One sentence naming the reference systems' versions and time box."""
    refs = results.get("references", {})
    if not refs:
        return ""
    names = ", ".join(
        f"{system} {ref.get('version') or '(could not run)'}" for system, ref in refs.items()
    )
    boxes = {ref.get("time_box_s") for ref in refs.values()}
    box = f"; each of their workloads is time-boxed at {boxes.pop():g} s" if len(boxes) == 1 else ""
    return f"References: {names}, each in its own virtual environment{box}."


def reference_lines(results: dict[str, Any]) -> list[str]:
    lines = []
    for system, ref in results.get("references", {}).items():
        lines.append(
            f"{REFERENCE_NAMES.get(system, system)}: {system} {ref.get('version')} "
            f"in {ref.get('venv')}, time box {ref.get('time_box_s'):g} s per workload"
            + (f", installed in {ref['install_s']} s" if ref.get("install_s") else "")
        )
    return lines


def _plain(header: list[str], body: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    for r in [header, *body]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


def print_report(results: dict[str, Any]) -> None:
    header, body, notes = comparison_table(results)
    has_levels = bool(results.get("levels"))
    title = "Cove against the reference systems"
    if results.get("experiment"):
        title += f" (experiment: {results['experiment']})"
    if results["quick"]:
        title += " (--quick)"
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text
        for line in machine_lines(results["machine"]) + reference_lines(results):
            print(line)
        _plain(header, body)
        for note in notes:
            print(f"  * {note}")
        if has_levels:
            _plain(*detail_table(results))
        return
    console = Console()
    if not console.is_terminal:
        console = Console(width=180)
    for line in machine_lines(results["machine"]) + reference_lines(results):
        console.print(line, style="dim", highlight=False)
    table = Table(title=title)
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i < 2 else "right", no_wrap=i == 0)
    for r in body:
        table.add_row(*r)
    console.print(table)
    for note in notes:
        console.print(f"  * {note}", highlight=False)
    if has_levels:
        dheader, dbody = detail_table(results)
        details = Table(title="Cove in detail")
        for i, name in enumerate(dheader):
            details.add_column(name, justify="left" if i == 0 else "right", no_wrap=i == 0)
        for r in dbody:
            details.add_row(*r)
        console.print(details)
    files = files_table(results)
    if files is not None:
        blobs = Table(title="Files: one upload and one download, streamed")
        for name in files[0]:
            blobs.add_column(name)
        for r in files[1]:
            blobs.add_row(*r)
        console.print(blobs)


def _markdown_table(header: list[str], body: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in body:
        name = "· " + r[0].strip() if r[0].startswith("  ") else r[0]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in [name, *r[1:]]) + " |")
    return lines


def markdown(results: dict[str, Any], details: bool = True) -> str:
    """The comparison (and Cove's details) as Markdown, with its footnotes."""
    header, body, notes = comparison_table(results)
    lines = _markdown_table(header, body)
    if notes:
        lines.append("")
        lines += [f"- {note}" for note in notes]
    if details and results.get("levels"):
        lines.append("")
        lines += _markdown_table(*detail_table(results))
    files = files_table(results)
    if files is not None:
        lines.append("")
        lines += _markdown_table(*files)
    return "\n".join(lines)


def files_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]] | None:
    """Upload and download throughput per blob backend, or None if not measured."""
    files = results.get("files")
    if not files:
        return None
    header = ["Blob backend", "File", "Upload", "Download"]
    body = []
    for backend, row in files.items():
        name = {"local": "local folder", "s3": "S3 (moto server, local)"}.get(backend, backend)
        size = f"{row['bytes'] / 2**20:.0f} MiB"
        up, down = f"{row['upload_mb_s']:.0f} MB/s", f"{row['download_mb_s']:.0f} MB/s"
        body.append([name, size, up, down])
    return header, body
