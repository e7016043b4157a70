"""Fuzzing the request-argument decoder (hypothesis): whatever bytes or JSON arrive, the
server's JSON reader and ``decode_arguments`` either decode them or raise Cove's own input
errors (a 400), never anything else (a 500), and never recurse without bound.

Bounded for CI: ``COVE_FUZZ_EXAMPLES`` examples per property (default 200).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from cove import application, function
from cove.errors import CoveError, DeserializationError, InvalidInputError
from cove.sdk.codec import application_signature, decode_arguments
from cove.server import safejson
from cove.server.inputs import _from_body

EXAMPLES = int(os.environ.get("COVE_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


@application()
@function()
def typed(
    text: str,
    count: int,
    ratio: float,
    flag: bool,
    items: list[Item],
    table: dict[str, list[int]],
    pair: tuple[int, str],
    unique: set[str],
    maybe: int | None = None,
    anything: Any = None,
) -> str:
    return text


SIGNATURE = application_signature(typed)
PARAMS = {p.name: {"name": p.name, "is_file": p.is_file} for p in SIGNATURE.parameters}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)
argument_maps = st.dictionaries(
    st.sampled_from([*PARAMS, "unknown"]) | st.text(max_size=6), json_values, max_size=12
)


@FUZZ
@given(argument_maps)
def test_decode_arguments_decodes_or_says_which_parameter(values: dict[str, Any]) -> None:
    try:
        kwargs = decode_arguments(SIGNATURE, values)
    except DeserializationError as err:
        assert err.message.startswith("application typed:")
        return
    assert set(kwargs) <= set(PARAMS)
    assert isinstance(kwargs["text"], str) and isinstance(kwargs["items"], list)


@FUZZ
@given(st.binary(max_size=2000))
def test_any_bytes_are_json_or_a_value_error(raw: bytes) -> None:
    try:
        value = safejson.loads(raw)
    except ValueError:
        return
    json.dumps(value, allow_nan=False)  # what it accepts is plain JSON: no NaN, no Infinity


nested = st.integers(min_value=1, max_value=3000).map(lambda n: "[" * n + "]" * n)
numbers = st.integers(min_value=1, max_value=20_000).map(lambda n: "1" * n) | st.sampled_from(
    ["1e400", "-1e400", "NaN", "Infinity", "-Infinity", "1e-400", "0.1e99999999"]
)


@FUZZ
@given(st.one_of(nested, numbers, json_values.map(json.dumps)))
def test_hostile_json_bodies_become_input_errors(text: str) -> None:
    body = text.encode()
    try:
        values = _from_body("typed", body, "application/json", PARAMS)
        decode_arguments(SIGNATURE, values)
    except (InvalidInputError, DeserializationError):
        pass
    except CoveError as err:  # any other Cove error would not be a 400
        pytest.fail(f"{err.code}: {err.message}")
