"""The seed documents' code runs on Cove verbatim (issue 15): every snippet of
/work/shared/seeds (``shared/seeds`` beside the repository) that starts with
``from tensorlake.applications import`` or ``@function(`` is taken from the seed's own text,
so the test and the seed cannot drift, written unchanged into one file with a small
application below that calls what runs offline, deployed with ``cove deploy`` and run on the
server (``cove invoke``) and with ``cove run``.

``process`` (body ``...``, hint ``-> str``) returns ``None``: as a child call that is its
value (values between calls are pickled, not checked against hints), as in the Tensorlake
SDK's local runner; ``call_llm`` needs OpenAI and is deployed, not called. Checked with
``tensorlake`` 0.5.163: a child returning ``None`` for ``-> str`` gives ``None`` to its
caller. (That SDK version refuses ``@function(max_concurrency=...)``, which the seed's
newer documentation shows; Cove accepts it.)

The seed documents' statements about the request context (``ctx.request_id``,
``ctx.state.set/get``, ``progress.update``, ``metrics.timer/counter``) are run by examples/
(state.py, document_pipeline.py) in tests/integration/test_examples.py.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SEEDS = next(
    (p for p in (REPO.parent / "shared" / "seeds", REPO / "shared" / "seeds") if p.is_dir()),
    REPO.parent / "shared" / "seeds",
)
SEED = SEEDS / "002_b00bb50a9c661a2e.txt"

STARTS = ("from tensorlake.applications import", "@function(")
TOP_LEVEL = re.compile(r"(@|def |class |async def |from |import )")
BULLETS = ("\u2022", "-", "*", "\u00b7")

APPLICATION = """

# -- added by tests/e2e/test_seed_snippets.py: an application calling the seed's functions --
from tensorlake.applications import application


@application()
@function()
def seed_snippets(data: str) -> dict:
    return {"process": process(data), "call_llm": call_llm.__name__}
"""


def _is_code(line: str) -> bool:
    """A line of a snippet: indented (a body; not a scraped list's bullet), or a top-level
    statement."""
    if line[:1].isspace():
        return not line.lstrip().startswith(BULLETS)
    return bool(TOP_LEVEL.match(line))


def _parses(lines: list[str]) -> bool:
    try:
        ast.parse(textwrap.dedent("\n".join(lines)))
    except SyntaxError:
        return False
    return True


def snippets(text: str) -> list[str]:
    """The code blocks of a scraped page: from a line starting with one of ``STARTS`` to the
    first line of prose after it (blank lines inside a block are kept), dedented; trailing
    lines that would not parse (prose that looked like code) are left out."""
    lines = text.splitlines()
    found: list[str] = []
    i = 0
    while i < len(lines):
        if not lines[i].lstrip().startswith(STARTS):
            i += 1
            continue
        block = [lines[i]]
        i += 1
        while i < len(lines):
            j = i
            while j < len(lines) and not lines[j].strip():
                j += 1
            if j == len(lines) or not _is_code(lines[j]):
                break
            block.extend(lines[i : j + 1])
            i = j + 1
        while len(block) > 1 and not _parses(block):
            block.pop()
        found.append(textwrap.dedent("\n".join(block)).strip("\n") + "\n")
    return found


def seed_snippets() -> list[str]:
    """The snippets of every seed document, in file order."""
    seeds = sorted(SEEDS.glob("*.txt"))
    if SEED not in seeds:
        pytest.skip(f"no seed document at {SEED}")
    return [snippet for seed in seeds for snippet in snippets(seed.read_text())]


def test_snippets_are_cut_from_scraped_prose() -> None:
    page = (
        "Intro text.\nfrom tensorlake.applications import function\n\n@function()\n"
        "def f(x: int) -> int:\n    y = x\n\n    return y\nProse right after the code.\n"
        "  \u2022 an indented bullet\n\n@function(cpu=2)\ndef g() -> None:\n    ...\n\n"
        "  \u2022 another bullet\n"
    )
    assert snippets(page) == [
        "from tensorlake.applications import function\n\n@function()\n"
        "def f(x: int) -> int:\n    y = x\n\n    return y\n",
        "@function(cpu=2)\ndef g() -> None:\n    ...\n",
    ]


def test_the_seed_snippets_are_found() -> None:
    found = seed_snippets()
    assert len(found) == 4, found
    assert found[0].startswith("from tensorlake.applications import function\n")
    for snippet in found:
        ast.parse(snippet)  # whole statements, nothing of the prose around them
        assert snippet.startswith(STARTS) and "@function(" in snippet
    last_lines = [snippet.splitlines()[-1].strip() for snippet in found]
    assert last_lines == ["...", "...", "...", "return response.choices[0].message"]


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("seed")
    path = folder / "seed_snippets.py"
    path.write_text("\n\n".join(seed_snippets()) + APPLICATION)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("data")).start()
    try:
        yield process
    finally:
        process.stop()


def cove(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cove.cli.main", *args],
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=180,
    )


EXPECTED = {"process": None, "call_llm": "call_llm"}
SCALING = ("min_containers", "max_containers", "warm_containers", "max_concurrency")


def test_the_seed_snippets_deploy_and_run_on_a_server(program: Path, server: ServerProcess) -> None:
    deployed = cove("deploy", str(program), "--server", server.url, cwd=program.parent)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert f"{server.url}/applications/seed_snippets" in deployed.stdout
    # The seed's scaling settings reached the server (the last ``process`` wins, as in Python).
    with server.client() as client:
        r = client.get("/applications/seed_snippets/functions")
    assert r.status_code == 200, r.text
    config = {
        f["function"]: {k: f[k] for k in SCALING}
        for f in r.json()["functions"]
        if f["function"] in ("process", "call_llm")
    }
    assert config["process"] == {
        "min_containers": 2,
        "max_containers": 20,
        "warm_containers": 4,
        "max_concurrency": 1,
    }
    assert (config["call_llm"]["max_concurrency"], config["call_llm"]["warm_containers"]) == (5, 2)
    invoked = cove(
        "invoke", "seed_snippets", "--json", '"hello"', "--server", server.url, cwd=program.parent
    )
    assert invoked.returncode == 0, invoked.stdout + invoked.stderr
    assert json.loads(invoked.stdout) == EXPECTED


def test_the_seed_snippets_run_with_cove_run(program: Path) -> None:
    result = cove("run", program.name, "seed_snippets", "hello", cwd=program.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == EXPECTED
