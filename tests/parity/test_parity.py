"""Differential tests: each parity program (tests/parity/programs) on the ``tensorlake`` SDK's
own local runner, on Cove's ``run_local_application`` and on a real ``cove server``; every
case's outcome (output, or exception type, phase and the ``str()`` the SDK defines) must be
the reference's, unless docs/tensorlake.md lists the case (tests/parity/harness.py).

The reference runs in its own virtual environment (benchmarks/.venvs/tensorlake). Where it is
missing the suite skips, saying why; with COVE_PARITY_REFERENCE=required (set by .ci/run) it
is installed, and if that fails the suite fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.parity import harness

pytestmark = pytest.mark.slow

PROGRAMS = harness.programs()


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Results]:
    try:
        harness.reference_python()
    except harness.ReferenceUnavailable as exc:
        if os.environ.get("COVE_PARITY_REFERENCE") == "required":
            pytest.fail(f"COVE_PARITY_REFERENCE=required but {exc}")
        pytest.skip(str(exc))
    work = tmp_path_factory.mktemp("parity")
    found = harness.run_all(work)
    report = work / "parity-report.md"
    report.write_text(harness.table(found, harness.allowed_differences()) + "\n")
    print(f"parity report: {report}")
    yield found


@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.stem)
def test_cove_matches_the_reference(results: harness.Results, program: Path) -> None:
    listed = harness.allowed_differences()
    mine = harness.Results(
        outcomes={
            side: {k: v for k, v in cases.items() if k.startswith(f"{program.stem}.")}
            for side, cases in results.outcomes.items()
        },
        case_options=results.case_options,
    )
    assert set(mine.outcomes["reference"]) == set(mine.outcomes["local"]), "cases went missing"
    problems = harness.verdicts(mine, listed)
    assert not problems, "\n".join(problems) + "\n\n" + harness.table(mine, listed)


def test_every_listed_case_exists() -> None:
    """docs/tensorlake.md lists only cases that the programs define (no drift)."""
    known = {f"{p.stem}.{name}" for p in PROGRAMS for name in harness.case_names(p)}
    listed = harness.allowed_differences()
    assert set(listed) <= known, f"listed but not a case: {sorted(set(listed) - known)}"
    for entry in listed.values():
        assert entry.reason, f"{entry.case} is listed without a reason"


def test_programs_name_their_cases_uniquely() -> None:
    for program in PROGRAMS:
        names = harness.case_names(program)
        assert names, f"{program.name} has no CASES"
        assert len(names) == len(set(names)), f"{program.name} repeats a case name"


def test_the_lists_are_parsed_from_their_tables(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        f"# T\n\n## {harness.DELIBERATE}\n\nText.\n\n| Case | Where | Why |\n|---|---|---|\n"
        "| `a.b` | server | more |\n\n"
        f"## {harness.NOT_YET}\n\n| Case | Where | Reference | Why |\n|---|---|---|---|\n"
        "| `c.d` | local, server | x | open |\n\n## Other\n\n| Case | Where |\n|---|---|\n"
        "| `e.f` | local |\n"
    )
    listed = harness.allowed_differences(doc)
    assert set(listed) == {"a.b", "c.d"}
    assert listed["a.b"].sides == {"server"} and listed["a.b"].section == harness.DELIBERATE
    assert listed["c.d"].sides == {"local", "server"} and listed["c.d"].section == harness.NOT_YET
