"""Every example in examples/, run both in process (run_local_application) and on a server.

The same cases run through two :class:`Runner` implementations: ``local`` imports the
example module and calls ``run_local_application``; ``server`` deploys the file to a
server in this process (real container processes) and calls it over HTTP the way the
example's docstring shows (empty body, JSON body, or multipart with one part per
parameter). Both must give exactly the expected output, hence the same output.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
import typing
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pydantic
import pydantic_core
import pytest
from fastapi.testclient import TestClient

from cove import File, RequestFailed, run_local_application
from cove.engine.settings import Settings
from cove.server import create_app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# Example file -> the applications it defines.
APPS: dict[str, set[str]] = {
    "hello_world": {"hello_world"},
    "greet": {"greet"},
    "process_data": {"process_data"},
    "models": {"customer_profile", "describe_value", "inspect_json"},
    "files": {"uppercase", "word_frequencies", "file_info"},
    "composition": {
        "hypotenuse",
        "sum_of_squares",
        "statistics",
        "collatz_steps",
        "word_lengths",
    },
    "classes": {"to_roman_numerals", "from_roman_numerals", "roman_table_info"},
    "state": {"shopping_cart"},
    "document_pipeline": {"analyze_documents"},
}
MODULE_OF = {app: module for module, apps in APPS.items() for app in apps}


class CallFailed(Exception):
    """The request failed; ``error`` is the error JSON (``code``, ``message``, ...)."""

    def __init__(self, error: dict[str, Any], status: int | None = None) -> None:
        super().__init__(error.get("message"))
        self.error = error
        self.status = status

    @property
    def message(self) -> str:
        return str(self.error.get("message"))


def to_json_value(value: Any) -> Any:
    """Outputs as a client sees them: JSON values, or a File."""
    if isinstance(value, File):
        return value
    return json.loads(pydantic_core.to_json(value))


# -- runners ---------------------------------------------------------------------------------


class Runner:
    mode: str

    def call(self, app: str, **kwargs: Any) -> Any:
        """Run ``app`` with JSON-shaped keyword arguments (Files as Files); its output."""
        raise NotImplementedError

    def fail(self, app: str, **kwargs: Any) -> CallFailed:
        """Run ``app``, expecting the request to fail; the failure."""
        with pytest.raises(CallFailed) as info:
            self.call(app, **kwargs)
        return info.value


def import_example(name: str) -> ModuleType:
    module = importlib.import_module(name)
    origin = Path(module.__file__ or "").resolve()
    assert origin == EXAMPLES / f"{name}.py", f"module {name} shadowed by {origin}"
    return module


class LocalRunner(Runner):
    mode = "local"

    def call(self, app: str, **kwargs: Any) -> Any:
        fn = getattr(import_example(MODULE_OF[app]), app)
        # Like a Python caller would: JSON-shaped values become the hinted types (models).
        hints = typing.get_type_hints(fn.__wrapped__)
        values = {
            name: value
            if isinstance(value, File)
            else pydantic.TypeAdapter(hints.get(name, Any)).validate_python(value)
            for name, value in kwargs.items()
        }
        request = run_local_application(fn, **values)
        try:
            return to_json_value(request.output())
        except RequestFailed as exc:
            raise CallFailed(exc.to_dict()) from None


@dataclass
class ServerRunner(Runner):
    client: TestClient
    parameters: dict[str, list[dict[str, Any]]]
    mode: str = "server"
    request_ids: dict[str, str] = field(default_factory=dict)

    def call(self, app: str, **kwargs: Any) -> Any:
        params = self.parameters[app]
        url = f"/applications/{app}?wait=60"
        if not kwargs:
            r = self.client.post(url)
        elif len(params) == 1 and not params[0]["is_file"]:
            (value,) = kwargs.values()
            r = self.client.post(
                url,
                content=pydantic_core.to_json(value),
                headers={"Content-Type": "application/json"},
            )
        else:
            parts: dict[str, Any] = {}
            for name, value in kwargs.items():
                if isinstance(value, File):
                    parts[name] = (f"{name}.bin", value.content, value.content_type)
                else:
                    parts[name] = (None, pydantic_core.to_json(value), "application/json")
            r = self.client.post(url, files=parts)
        self.request_ids[app] = r.headers.get("X-Cove-Request-Id", "")
        if r.status_code != 200:
            assert r.status_code != 202, f"{app} did not finish in 60 s"
            raise CallFailed(r.json()["error"], r.status_code)
        content_type = r.headers["content-type"]
        if content_type.startswith("application/json"):
            return r.json()
        return File(r.content, content_type)

    def status(self, app: str) -> dict[str, Any]:
        r = self.client.get(f"/applications/{app}/requests/{self.request_ids[app]}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def examples_on_path() -> Iterator[None]:
    sys.path.insert(0, str(EXAMPLES))
    try:
        yield
    finally:
        sys.path.remove(str(EXAMPLES))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerRunner]:
    data = tmp_path_factory.mktemp("examples-server")
    with TestClient(create_app(Settings(data_dir=data))) as client:
        parameters: dict[str, list[dict[str, Any]]] = {}
        for module, apps in APPS.items():
            path = EXAMPLES / f"{module}.py"
            r = client.post(
                "/applications", files={"code": (path.name, path.read_bytes(), "text/x-python")}
            )
            assert r.status_code == 201, r.text
            deployed = r.json()["applications"]
            assert {a["name"] for a in deployed} == apps
            parameters.update({a["name"]: a["parameters"] for a in deployed})
        yield ServerRunner(client, parameters)


@pytest.fixture(params=["local", "server"])
def runner(request: pytest.FixtureRequest) -> Runner:
    if request.param == "local":
        return LocalRunner()
    server_runner: ServerRunner = request.getfixturevalue("server")
    return server_runner


# -- cases: (app, kwargs, expected output) -----------------------------------------------------

TEXT = b"The cat and the hat.\nThe cat sat!\n"
CUSTOMER = {
    "name": "ada  lovelace",
    "age": 36,
    "email": "ADA@Example.org",
    "addresses": [
        {"street": "12 St James's Square", "city": "London", "country": "UK"},
        {"street": "Ockham Park", "city": "Ockham", "country": "UK"},
    ],
    "orders": [
        {"sku": "analytical-engine", "quantity": 1, "unit_price": 999.5},
        {"sku": "punch-card", "quantity": 40, "unit_price": 0.25},
    ],
}
DOCUMENTS = [
    {
        "id": "intro",
        "text": "Durable functions retry on failure. Durable state survives a crash "
        "and every request keeps its state.",
    },
    {
        "id": "scaling",
        "text": "Containers scale with requests. A warm container answers at once, "
        "and idle containers stop.",
    },
    {"id": "empty", "text": ""},
    {"id": "misc", "text": "Nothing relevant here at all."},
]
PIPELINE_SUMMARY = {
    "documents": 4,
    "chunks": 5,
    "matched_chunks": 4,
    "total_score": 11,
    "keyword_counts": {
        "container": 3,
        "durable": 2,
        "request": 2,
        "retry": 1,
        "scale": 1,
        "state": 2,
    },
    "top_keywords": [
        {"keyword": "container", "count": 3},
        {"keyword": "durable", "count": 2},
        {"keyword": "request", "count": 2},
    ],
    "best_chunk": {
        "doc_id": "intro",
        "index": 0,
        "score": 4,
        "text": "Durable functions retry on failure. Durable state survives",
    },
    "stages": {"split": 5, "scored": 5},
}


@dataclass
class Case:
    id: str
    app: str
    kwargs: dict[str, Any]
    expected: Any


CASES = [
    Case("hello_world", "hello_world", {}, "Hello, world!"),
    Case("greet", "greet", {"name": "Ada"}, "Hello, Ada!"),
    Case("greet_blank", "greet", {"name": "   "}, "Hello, stranger!"),
    Case(
        "process_data_mean",
        "process_data",
        {"numbers": [1.5, 2.25, 3.125], "operation": "mean", "precision": 2},
        {"operation": "mean", "count": 3, "result": 2.29},
    ),
    Case(
        "process_data_default_precision",
        "process_data",
        {"numbers": [1.5, 2.25, 3.125], "operation": "sum"},
        {"operation": "sum", "count": 3, "result": 6.88},
    ),
    Case(
        "process_data_stdev",
        "process_data",
        {"numbers": [2, 4, 4, 4, 5, 5, 7, 9], "operation": "stdev", "precision": 3},
        {"operation": "stdev", "count": 8, "result": 2.0},
    ),
    Case(
        "customer_profile",
        "customer_profile",
        {"customer": CUSTOMER},
        {
            "display_name": "Ada Lovelace",
            "email": "ada@example.org",
            "is_adult": True,
            "primary_city": "London",
            "address_count": 2,
            "spending": {"orders": 2, "items": 41, "total": 1009.5},
            "tier": {"name": "gold", "discount": 0.1},
        },
    ),
    Case(
        "customer_profile_defaults",
        "customer_profile",
        {"customer": {"name": "bob", "age": 12, "email": "Bob@x.io"}},
        {
            "display_name": "Bob",
            "email": "bob@x.io",
            "is_adult": False,
            "primary_city": None,
            "address_count": 0,
            "spending": {"orders": 0, "items": 0, "total": 0.0},
            "tier": {"name": "basic", "discount": 0.0},
        },
    ),
    Case("describe_int", "describe_value", {"value": 42}, "int: 42 (even)"),
    Case("describe_str", "describe_value", {"value": "42"}, "str: '42' (2 characters)"),
    Case(
        "inspect_object",
        "inspect_json",
        {"value": {"a": [1, 2], "b": None}},
        {"type": "dict", "size": 2, "value": {"a": [1, 2], "b": None}},
    ),
    Case(
        "inspect_array",
        "inspect_json",
        {"value": [1, "x", True, None, 2.5]},
        {"type": "list", "size": 5, "value": [1, "x", True, None, 2.5]},
    ),
    Case(
        "inspect_float",
        "inspect_json",
        {"value": 2.5},
        {"type": "float", "size": None, "value": 2.5},
    ),
    Case(
        "inspect_bool",
        "inspect_json",
        {"value": False},
        {"type": "bool", "size": None, "value": False},
    ),
    Case(
        "inspect_null",
        "inspect_json",
        {"value": None},
        {"type": "NoneType", "size": None, "value": None},
    ),
    Case("inspect_str", "inspect_json", {"value": "hé"}, {"type": "str", "size": 2, "value": "hé"}),
    Case(
        "uppercase",
        "uppercase",
        {"file": File(TEXT, "text/plain")},
        File(b"THE CAT AND THE HAT.\nTHE CAT SAT!\n", "text/plain"),
    ),
    Case(
        "word_frequencies",
        "word_frequencies",
        {"file": File(TEXT, "text/plain"), "top": 3},
        File(b"rank,word,count\n1,the,3\n2,cat,2\n3,and,1\n", "text/csv"),
    ),
    Case(
        "word_frequencies_default_top",
        "word_frequencies",
        {"file": File(TEXT, "text/plain")},
        File(b"rank,word,count\n1,the,3\n2,cat,2\n3,and,1\n4,hat,1\n5,sat,1\n", "text/csv"),
    ),
    Case(
        "file_info",
        "file_info",
        {"file": File(b"\x00\x01binary\n", "application/octet-stream")},
        {
            "size": 9,
            "content_type": "application/octet-stream",
            "lines": 1,
            "sha256": hashlib.sha256(b"\x00\x01binary\n").hexdigest(),
        },
    ),
    Case("hypotenuse", "hypotenuse", {"a": 3, "b": 4}, 5.0),
    Case("sum_of_squares", "sum_of_squares", {"numbers": [1, 2, 3, 4]}, 30),
    Case("sum_of_squares_empty", "sum_of_squares", {"numbers": []}, 0),
    Case(
        "statistics",
        "statistics",
        {"numbers": [4, 8, 15, 16, 23, 42]},
        {"count": 6, "total": 108, "mean": 18.0, "min": 4, "max": 42, "primes": [23]},
    ),
    Case("collatz_27", "collatz_steps", {"n": 27}, 111),
    Case("collatz_1", "collatz_steps", {"n": 1}, 0),
    Case(
        "word_lengths",
        "word_lengths",
        {"words": ["durable", "calls", "x"]},
        {"durable": 7, "calls": 5, "x": 1},
    ),
    Case("word_lengths_empty", "word_lengths", {"words": []}, {}),
    Case(
        "to_roman",
        "to_roman_numerals",
        {"numbers": [1999, 2024, 4, 3999]},
        ["MCMXCIX", "MMXXIV", "IV", "MMMCMXCIX"],
    ),
    Case(
        "from_roman",
        "from_roman_numerals",
        {"numerals": ["mcmxcix", "IV", " xl "]},
        {"mcmxcix": 1999, "IV": 4, " xl ": 40},
    ),
    Case("roman_table_info", "roman_table_info", {}, {"entries": 3999, "builders": 1}),
    Case(
        "shopping_cart",
        "shopping_cart",
        {"customer": "ada", "items": ["tea", "scones", "tea"]},
        {
            "customer": "ada",
            "message": "ada ordered 3 items: scones x1, tea x2",
            "unique_items": 2,
            "same_request": True,
            "previous_customer": None,
        },
    ),
    Case(
        "analyze_documents",
        "analyze_documents",
        {"documents": DOCUMENTS, "chunk_words": 8},
        PIPELINE_SUMMARY,
    ),
    Case(
        "analyze_documents_keywords",
        "analyze_documents",
        {"documents": DOCUMENTS[:2], "keywords": ["Scale", "crash", "missing"], "top": 5},
        {
            "documents": 2,
            "chunks": 2,
            "matched_chunks": 2,
            "total_score": 2,
            "keyword_counts": {"crash": 1, "scale": 1},
            "top_keywords": [{"keyword": "crash", "count": 1}, {"keyword": "scale", "count": 1}],
            "best_chunk": {
                "doc_id": "intro",
                "index": 0,
                "score": 1,
                "text": DOCUMENTS[0]["text"],
            },
            "stages": {"split": 2, "scored": 2},
        },
    ),
]

# (app, kwargs, text the error message must contain)
FAILURES = [
    ("process_data", {"numbers": [1.0], "operation": "median"}, "unknown operation 'median'"),
    ("process_data", {"numbers": [], "operation": "max"}, "'max' needs at least one number"),
    ("uppercase", {"file": File(b"\xff\xfe", "text/plain")}, "needs a UTF-8 text file"),
    ("statistics", {"numbers": []}, "statistics needs at least one number"),
    ("collatz_steps", {"n": 0}, "n must be a positive integer, got 0"),
    ("to_roman_numerals", {"numbers": [5, 0]}, "0 cannot be written in Roman numerals"),
    ("from_roman_numerals", {"numerals": ["IIII"]}, "'IIII' is not a valid Roman numeral"),
    (
        "analyze_documents",
        {"documents": [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}]},
        "document ids must be unique",
    ),
]

_outcomes: dict[tuple[str, str], tuple[str, Any]] = {}


def outcome(runner: Runner, case: Case) -> tuple[str, Any]:
    """("ok", output) or ("failed", error message); each case runs once per mode."""
    key = (runner.mode, case.id)
    if key not in _outcomes:
        try:
            _outcomes[key] = ("ok", runner.call(case.app, **case.kwargs))
        except CallFailed as exc:
            _outcomes[key] = ("failed", exc.message)
    return _outcomes[key]


# -- tests -----------------------------------------------------------------------------------


def test_every_application_has_a_case() -> None:
    assert {c.app for c in CASES} == set(MODULE_OF)
    assert len({c.id for c in CASES}) == len(CASES)


def test_examples_are_self_contained() -> None:
    allowed = {"cove", "pydantic"} | set(sys.stdlib_module_names)
    for path in sorted(EXAMPLES.glob("*.py")):
        source = path.read_text()
        assert path.stem.isidentifier()
        assert source.startswith('"""'), f"{path.name} has no module docstring"
        assert "curl" in source, f"{path.name} does not show how to call it"
        for line in source.splitlines():
            words = line.split()
            if words[:1] in (["import"], ["from"]) and not line.startswith(" "):
                top = words[1].split(".")[0]
                assert top in allowed, f"{path.name} imports {top}"
    assert {p.stem for p in EXAMPLES.glob("*.py")} == set(APPS)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_example(runner: Runner, case: Case) -> None:
    assert outcome(runner, case) == ("ok", case.expected)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_local_and_server_agree(server: ServerRunner, case: Case) -> None:
    local = outcome(LocalRunner(), case)
    remote = outcome(server, case)
    assert local == remote
    if isinstance(local[1], File):
        assert local[1].content_type == remote[1].content_type


@pytest.mark.parametrize(
    ("app", "kwargs", "message"), FAILURES, ids=[f"{a}-{i}" for i, (a, _, _) in enumerate(FAILURES)]
)
def test_request_errors(runner: Runner, app: str, kwargs: dict[str, Any], message: str) -> None:
    failure = runner.fail(app, **kwargs)
    assert message in failure.message
    if runner.mode == "server":
        assert failure.status == 500
        assert failure.error["code"] == "request_failed"
        assert failure.error["reason"] == "request_error"
    else:
        assert failure.error["code"] == "request_error"


# -- server-only checks ----------------------------------------------------------------------


def test_pipeline_request_status(server: ServerRunner) -> None:
    assert server.call("analyze_documents", documents=DOCUMENTS, chunk_words=8) == PIPELINE_SUMMARY
    status = server.status("analyze_documents")
    assert status["status"] == "succeeded"
    assert status["error"] is None
    calls = status["function_calls"]
    by_function: dict[str, list[dict[str, Any]]] = {}
    for call in calls:
        by_function.setdefault(call["function"], []).append(call)
    assert {f: len(c) for f, c in by_function.items()} == {
        "analyze_documents": 1,
        "split_documents": 1,
        "score_chunk": 5,  # the map: one call per chunk
        "merge_scores": 5,  # the reduce: one call per chunk, from Tally()
        "build_summary": 1,
    }
    assert all(c["status"] == "succeeded" for c in calls)
    (root,) = by_function["analyze_documents"]
    assert root["parent_id"] is None
    assert all(
        c["parent_id"] == root["id"] for f, cs in by_function.items() for c in cs if c is not root
    )
    progress = {p["function_call_id"]: p for p in status["progress"]}
    assert progress[root["id"]]["current"] == progress[root["id"]]["total"] == 4
    assert progress[root["id"]]["message"] == "done"
    assert status["metrics"]["counters"] == {"documents": 4, "chunks_scored": 5}
    (seconds,) = status["metrics"]["timers"]["pipeline_seconds"]
    assert 0 <= seconds < 60


def test_server_accepts_the_other_input_forms(server: ServerRunner) -> None:
    client = server.client
    # A str part may be plain text; parameters with defaults may be left out.
    r = client.post(
        "/applications/process_data?wait=60",
        files={"numbers": (None, "[1, 2, 3.5]"), "operation": (None, "max")},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"operation": "max", "count": 3, "result": 3.5}
    # Several parameters may also come as one JSON object keyed by name.
    r = client.post("/applications/hypotenuse?wait=60", json={"a": 5, "b": 12})
    assert r.status_code == 200, r.text
    assert r.json() == 13.0
    # A lone File parameter takes the raw body with its content type.
    r = client.post(
        "/applications/uppercase?wait=60",
        content=b"raw body",
        headers={"Content-Type": "text/x-log"},
    )
    assert r.status_code == 200, r.text
    assert (r.content, r.headers["content-type"]) == (b"RAW BODY", "text/x-log")
    # Unknown arguments are ignored.
    r = client.post(
        "/applications/greet?wait=60", files={"name": (None, '"Bo"'), "extra": (None, "1")}
    )
    assert r.json() == "Hello, Bo!"


def test_server_rejects_invalid_model_input(server: ServerRunner) -> None:
    bad = {**CUSTOMER, "age": "old"}
    r = server.client.post("/applications/customer_profile?wait=60", json=bad)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "invalid_input"
    assert "customer" in error["message"] and "age" in error["message"]


def test_requests_do_not_share_state(runner: Runner) -> None:
    first = runner.call("shopping_cart", customer="ada", items=["tea"])
    second = runner.call("shopping_cart", customer="bob", items=["jam", "jam"])
    assert first["previous_customer"] is None and second["previous_customer"] is None
    assert second["message"] == "bob ordered 2 items: jam x2"


# -- known bugs in src -----------------------------------------------------------------------


def test_local_accepts_json_shaped_model_input() -> None:
    models = import_example("models")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = run_local_application(models.customer_profile, CUSTOMER).output()
    assert out.display_name == "Ada Lovelace"
