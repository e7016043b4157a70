"""The parity suite's harness: every program's cases on the reference SDK's local runner, on
Cove's ``run_local_application`` and on a Cove server, and their outcomes compared.

Each program (``programs/*.py``) is one file written against ``tensorlake.applications`` with a
``CASES`` list (name, application, args, kwargs). ``runner.py`` runs one program's cases in one
subprocess per program and side, and prints a normalized outcome per case. Nothing is cached
between runs. Disagreements are allowed only for cases listed in docs/tensorlake.md
(``allowed_differences``).

``python -m tests.parity.harness`` runs everything and prints the table of outcomes.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
PROGRAMS = HERE / "programs"
RUNNER = HERE / "runner.py"
SHIM = HERE / "shim"
DOC = ROOT / "docs" / "tensorlake.md"

#: Exceptions whose ``str()`` the SDK defines (a failure reason, the RequestError's message,
#: fixed texts): compared as well as the type. A case may ask for ``"str": True`` too.
STR_DEFINED = {"RequestFailed", "RequestError", "TimeoutError", "RequestNotFinished"}
#: Seconds one case may take on any side before it counts as hung.
CASE_TIMEOUT_S = 45.0
#: Seconds a runner may take to start (import its SDK and the program).
START_TIMEOUT_S = 60.0
SIDES = ("reference", "local", "server")
DELIBERATE = "Deliberate differences"
NOT_YET = "Not yet matched (open in issue 15)"


def programs() -> list[Path]:
    return sorted(p for p in PROGRAMS.glob("*.py") if not p.name.startswith("_"))


# -- where the reference and Cove's tensorlake.applications come from ------------------------
class ReferenceUnavailable(RuntimeError):
    pass


def reference_python() -> str:
    """The reference venv's python. With COVE_PARITY_REFERENCE=required (CI) it is installed
    if missing and any failure is an error; otherwise a missing venv is unavailable."""
    from benchmarks.references import VENVS, ensure_venv

    required = os.environ.get("COVE_PARITY_REFERENCE") == "required"
    python = VENVS / "tensorlake" / "bin" / "python"
    if not required and not (VENVS / "tensorlake" / ".installed").exists():
        raise ReferenceUnavailable(
            f"the tensorlake reference venv is not at {python.parent.parent}; "
            "COVE_PARITY_REFERENCE=required installs it (as .ci/run does)"
        )
    try:
        return str(ensure_venv("tensorlake", lambda line: print(line, file=sys.stderr))["python"])
    except Exception as exc:
        why = f"the tensorlake reference could not be installed: {exc}"
        raise ReferenceUnavailable(why) from exc


#: The one line that makes ``tensorlake.applications`` Cove's in a process of one's own.
ALIAS_MODULE = "cove.tensorlake"


def cove_serves_tensorlake() -> bool:
    """Whether Cove itself serves ``tensorlake.applications`` (after ``import cove.tensorlake``;
    Cove's loader does it in the processes Cove starts). Otherwise the suite puts ``shim/``
    on PYTHONPATH, a stand-in re-exporting Cove's names."""
    probe = f"import cove, {ALIAS_MODULE}, tensorlake.applications as t\n"
    probe += "assert t.function is cove.function"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, cwd=ROOT, timeout=60, check=False
    )
    return done.returncode == 0


def cove_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, **(extra or {})}
    if cove_serves_tensorlake():
        env["COVE_PARITY_ALIAS"] = ALIAS_MODULE
    else:
        env.pop("COVE_PARITY_ALIAS", None)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SHIM), env.get("PYTHONPATH")) if p)
    return env


# -- running one program on one side --------------------------------------------------------
def run_program(
    python: str, mode: str, program: Path, env: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """``{case name: outcome}`` plus ``"<import>"`` and ``"<options>"``; a case that runs past
    CASE_TIMEOUT_S is ``{"phase": "hung"}`` (one that kills its runner ``crashed``), and a new
    runner goes on after it."""
    outcomes: dict[str, dict[str, Any]] = {}
    skip = 0
    while True:
        stopped = _run_from(python, mode, program, env, skip, outcomes)
        if stopped is None:
            return outcomes
        outcomes.setdefault(stopped, {"phase": "hung", "after_s": CASE_TIMEOUT_S})
        skip = len([k for k in outcomes if not k.startswith("<")])


def _run_from(
    python: str,
    mode: str,
    program: Path,
    env: dict[str, str],
    skip: int,
    outcomes: dict[str, dict[str, Any]],
) -> str | None:
    command = [python, str(RUNNER), mode, str(program), str(skip)]
    process = subprocess.Popen(
        command, cwd=program.parent, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, text=True,
    )  # fmt: skip
    lines: queue.Queue[str | None] = queue.Queue()
    errors: list[str] = []

    def pump_out() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    def pump_err() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            errors.append(line)
            del errors[:-200]

    threading.Thread(target=pump_out, daemon=True).start()
    threading.Thread(target=pump_err, daemon=True).start()
    current: str | None = None
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                if current is None:
                    raise RuntimeError(
                        f"{mode} runner of {program.name} did not start:\n{''.join(errors)}"
                    ) from None
                return current
            if line is None:
                process.wait(timeout=30)
                if current is not None:  # died inside a case: go on after it
                    outcomes[current] = {"phase": "crashed", "exit": process.returncode}
                    return current
                if "<import>" not in outcomes:
                    raise RuntimeError(
                        f"{mode} runner of {program.name} failed:\n{''.join(errors)[-4000:]}"
                    )
                return None
            message = json.loads(line)
            if "import" in message:
                outcomes.setdefault("<import>", message["import"])
            elif "start" in message:
                current = message["start"]
                outcomes.setdefault("<options>", {})[current] = {"str": message["str"]}
                deadline = time.monotonic() + CASE_TIMEOUT_S
            else:
                outcomes[message["case"]] = message["outcome"]
                current = None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


# -- the server side ------------------------------------------------------------------------
@contextlib.contextmanager
def cove_server(data_dir: Path, env: dict[str, str]) -> Iterator[Any]:
    from tests.conftest import ServerProcess

    server = ServerProcess(data_dir, env=env)
    server.start()
    try:
        yield server
    finally:
        server.kill()
        for record in (data_dir / "containers").glob("*"):
            with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
                os.killpg(int(record.name), signal.SIGKILL)


def deploy(server: Any, program: Path) -> dict[str, Any]:
    """The deploy's outcome, in the runner's form (a refused definition fails at import)."""
    with server.client() as client:
        response = client.post(
            "/applications", files={"code": (program.name, program.read_bytes())}
        )
    if response.status_code == 201:
        return {"phase": "import", "value": "ok"}
    try:
        error = response.json()["error"]
        return {"phase": "import", "raised": error.get("code"), "str": error.get("message")}
    except (ValueError, KeyError, TypeError):
        return {"phase": "import", "raised": f"HTTP {response.status_code}", "str": response.text}


# -- everything -----------------------------------------------------------------------------
@dataclass
class Results:
    #: side -> "program.case" -> outcome ("program.<import>" for the import itself)
    outcomes: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    case_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0


def run_all(
    work: Path, selected: list[Path] | None = None, log: Callable[[str], None] = print
) -> Results:
    began = time.monotonic()
    chosen = selected or programs()
    reference = reference_python()
    env = cove_env()
    reference_env = {k: v for k, v in os.environ.items() if k != "COVE_PARITY_ALIAS"}
    results = Results(outcomes={side: {} for side in SIDES})

    def record(side: str, program: Path, outcomes: dict[str, dict[str, Any]]) -> None:
        for name, options in outcomes.pop("<options>", {}).items():
            results.case_options[f"{program.stem}.{name}"] = options
        for name, outcome in outcomes.items():
            results.outcomes[side][f"{program.stem}.{name}"] = outcome

    with cove_server(work / "server", env) as server, ThreadPoolExecutor(4) as pool:
        remote_env = {**env, "COVE_URL": server.url}

        def remote(program: Path) -> dict[str, dict[str, Any]]:
            deployed = deploy(server, program)
            outcomes = run_program(sys.executable, "remote", program, remote_env)
            if deployed.get("value") != "ok":  # the server refused the file itself
                outcomes = {name: deployed for name in outcomes}
            outcomes["<import>"] = deployed
            return outcomes

        jobs = []
        for program in chosen:
            reference_run = pool.submit(run_program, reference, "local", program, reference_env)
            local_run = pool.submit(run_program, sys.executable, "local", program, env)
            jobs.append(("reference", program, reference_run))
            jobs.append(("local", program, local_run))
            jobs.append(("server", program, pool.submit(remote, program)))
        for side, program, job in jobs:
            record(side, program, job.result())
    results.seconds = time.monotonic() - began
    log(f"parity: {len(chosen)} programs on 3 sides in {results.seconds:.0f} s")
    return results


def case_names(program: Path) -> list[str]:
    """The names in the program's CASES, read without importing it (for the doc's check)."""
    text = program.read_text()
    return re.findall(r'\{\s*"name":\s*"([^"]+)"', text[text.rfind("CASES = [") :])


# -- comparing ------------------------------------------------------------------------------
def comparable(outcome: dict[str, Any], compare_str: bool) -> dict[str, Any]:
    kept = {k: v for k, v in outcome.items() if k in ("phase", "raised", "value", "message")}
    if compare_str or outcome.get("raised") in STR_DEFINED:
        kept["str"] = outcome.get("str")
    return kept


def agree(results: Results, case: str, side: str) -> bool:
    compare_str = bool(results.case_options.get(case, {}).get("str"))
    reference = results.outcomes["reference"].get(case)
    other = results.outcomes[side].get(case)
    if reference is None or other is None:
        return False
    return comparable(reference, compare_str) == comparable(other, compare_str)


@dataclass(frozen=True)
class Listed:
    case: str
    sides: frozenset[str]
    section: str
    reason: str


def allowed_differences(doc: Path = DOC) -> dict[str, Listed]:
    """Cases listed in docs/tensorlake.md: the first table after each of the two headings
    (DELIBERATE, NOT_YET) whose first column is ``Case``; rows ``| `program.case` | local,
    server | reason |``."""
    text = doc.read_text() if doc.exists() else ""
    listed: dict[str, Listed] = {}
    for section in (DELIBERATE, NOT_YET):
        match = re.search(rf"^#+\s*{re.escape(section)}\s*$", text, re.M)
        if match is None:
            continue
        rows = _first_table(text[match.end() :])
        for row in rows:
            case = row[0].strip().strip("`")
            sides = frozenset(s.strip() for s in row[1].split(",") if s.strip())
            unknown = sides - {"local", "server"}
            if unknown or not sides:
                raise ValueError(f"{doc}: {case}: sides must be local and/or server, got {row[1]}")
            if case in listed:
                raise ValueError(f"{doc}: {case} is listed twice")
            listed[case] = Listed(case, sides, section, row[-1].strip() if len(row) > 2 else "")
    return listed


def _first_table(text: str) -> list[list[str]]:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("#"):
            return []  # the next section began: no table here
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.lstrip().startswith("|") and cells and cells[0] == "Case":
            rows = []
            for row in lines[i + 2 :]:
                if not row.lstrip().startswith("|"):
                    break
                rows.append([c.strip() for c in row.strip().strip("|").split("|")])
            return rows
    return []


def verdicts(results: Results, listed: dict[str, Listed]) -> list[str]:
    """Every problem: an unlisted disagreement, or a listed case that now agrees (stale)."""
    problems = []
    for case in sorted(results.outcomes["reference"]):
        if case.endswith(".<import>"):
            continue
        for side in ("local", "server"):
            entry = listed.get(case)
            allowed = entry is not None and side in entry.sides
            same = agree(results, case, side)
            if not same and not allowed:
                reference = _short(results.outcomes["reference"][case])
                cove = _short(results.outcomes[side].get(case))
                problems.append(f"{case} on Cove {side}: reference {reference} but Cove {cove}")
            if same and allowed and entry is not None:
                problems.append(
                    f"{case} on Cove {side} now matches the reference: remove it from "
                    f"'{entry.section}' in docs/tensorlake.md"
                )
    return problems


def _short(outcome: dict[str, Any] | None) -> str:
    if outcome is None:
        return "(missing)"
    if "raised" in outcome:
        text = str(outcome.get("str", ""))
        text = text if len(text) <= 120 else text[:117] + "..."
        return f"{outcome['phase']}: {outcome['raised']}({text!r})"
    return f"{outcome['phase']}: {json.dumps(outcome.get('value'))[:160]}"


def table(results: Results, listed: dict[str, Listed]) -> str:
    rows = ["| case | reference | Cove local | Cove server |", "|---|---|---|---|"]
    for case in sorted(results.outcomes["reference"]):
        if case.endswith(".<import>"):
            continue
        cells = [_short(results.outcomes["reference"][case])]
        for side in ("local", "server"):
            mark = "=" if agree(results, case, side) else "≠"
            entry = listed.get(case)
            if mark == "≠" and entry is not None and side in entry.sides:
                mark += " (listed)"
            cells.append(f"{mark} {_short(results.outcomes[side].get(case))}")
        rows.append(f"| `{case}` | " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    import tempfile

    chosen = [PROGRAMS / f"{name}.py" for name in sys.argv[1:]] or None
    with tempfile.TemporaryDirectory() as tmp:
        found = run_all(Path(tmp), chosen)
    documented = allowed_differences()
    print(table(found, documented))
    print()
    print("\n".join(verdicts(found, documented)) or "no unlisted differences")
