"""The JSON edge of applications (cove.sdk.codec) and the retry delay math."""

import json
from typing import Any

import pytest

from cove import DeserializationError, File, Retries, SerializationError
from cove.sdk.codec import (
    FILE_SCHEMA,
    Signature,
    application_signature,
    decode_arguments,
    dumps,
    encode_output,
    loads,
)

from .apps import codec_apps as ca


def sig(fn: Any) -> Signature:
    return application_signature(fn)


def decode(fn: Any, values: dict[str, Any]) -> dict[str, Any]:
    return decode_arguments(sig(fn), values)


def encode_json(fn: Any, value: Any) -> Any:
    body, content_type = encode_output(sig(fn), value)
    assert content_type == "application/json"
    return json.loads(body)


# -- application_signature ---------------------------------------------------------------------


def test_signature_lists_parameters_in_order() -> None:
    s = sig(ca.defaults)
    assert s.function_name == "defaults"
    assert [p.name for p in s.parameters] == ["x", "y", "z"]
    assert [p.required for p in s.parameters] == [True, False, False]
    assert s.parameters[1].default == "why"
    assert s.return_hint is int
    assert not s.returns_file


def test_signature_is_cached() -> None:
    assert sig(ca.scalars) is sig(ca.scalars)


def test_missing_hints_are_any() -> None:
    s = sig(ca.unhinted)
    assert [p.hint for p in s.parameters] == [Any, Any]
    assert s.return_hint is Any
    assert s.parameters[0].schema() == {}


def test_file_parameters_and_return() -> None:
    s = sig(ca.file_in_out)
    doc, note = s.parameters
    assert doc.is_file and doc.adapter is None and doc.schema() == FILE_SCHEMA
    assert not note.is_file
    assert s.returns_file and s.return_schema() == FILE_SCHEMA


def test_schemas_describe_models() -> None:
    schema = sig(ca.person).parameters[0].schema()
    assert schema["title"] == "Person"
    assert set(schema["required"]) == {"name", "age", "address"}


# -- decode_arguments: types --------------------------------------------------------------------


def test_scalars() -> None:
    kwargs = decode(ca.scalars, {"s": "text", "i": 3, "f": 1.5, "b": True, "n": None})
    assert kwargs == {"s": "text", "i": 3, "f": 1.5, "b": True, "n": None}
    assert type(kwargs["i"]) is int and type(kwargs["b"]) is bool


def test_float_accepts_json_integer() -> None:
    kwargs = decode(ca.scalars, {"s": "", "i": 0, "f": 2, "b": False, "n": None})
    assert kwargs["f"] == 2.0 and isinstance(kwargs["f"], float)


def test_containers_from_json_arrays() -> None:
    kwargs = decode(
        ca.containers,
        {"xs": [1, 2], "d": {"a": 1}, "st": ["a", "b", "a"], "tp": [1, "x"]},
    )
    assert kwargs == {"xs": [1, 2], "d": {"a": 1}, "st": {"a", "b"}, "tp": (1, "x")}
    assert isinstance(kwargs["st"], set) and isinstance(kwargs["tp"], tuple)


@pytest.mark.parametrize("value", ["s", 1, 1.5, True, None, [1, "a"], {"k": [None]}])
def test_any_passes_any_json(value: Any) -> None:
    kwargs = decode(ca.anything, {"a": value, "u": 1})
    assert kwargs["a"] == value
    assert type(kwargs["a"]) is type(value)


@pytest.mark.parametrize("value", ["s", 1, 1.5, True, None, [1, "a"], {"k": [None]}])
def test_unhinted_passes_any_json(value: Any) -> None:
    assert decode(ca.unhinted, {"a": value}) == {"a": value}


@pytest.mark.parametrize(("value", "kind"), [("5", str), (5, int), ("text", str)])
def test_union_keeps_the_matching_member(value: Any, kind: type) -> None:
    kwargs = decode(ca.anything, {"a": None, "u": value})
    assert kwargs["u"] == value and type(kwargs["u"]) is kind


def test_optional() -> None:
    assert decode(ca.anything, {"a": 1, "u": 1, "opt": None})["opt"] is None
    assert decode(ca.anything, {"a": 1, "u": 1, "opt": 4})["opt"] == 4


def test_pydantic_models_nested() -> None:
    data = {"name": "Ada", "age": 36, "address": {"street": "Main", "zip_code": "01"}}
    p = decode(ca.person, {"p": data})["p"]
    assert isinstance(p, ca.Person)
    assert isinstance(p.address, ca.Address)
    assert p.address.zip_code == "01"
    assert p.tags == []


def test_nested_generics_of_models() -> None:
    data = {"north": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}], "south": []}
    orders = decode(ca.nested, {"orders": data})["orders"]
    assert list(orders) == ["north", "south"]
    assert all(isinstance(line, ca.Line) for line in orders["north"])
    assert [line.qty for line in orders["north"]] == [1, 2]
    assert orders["south"] == []


# -- decode_arguments: names, defaults, errors ---------------------------------------------


def test_unknown_names_are_ignored() -> None:
    assert decode(ca.defaults, {"x": 1, "removed_param": "old", "y": "b"}) == {"x": 1, "y": "b"}


def test_defaults_are_used_for_missing_optional_parameters() -> None:
    kwargs = decode(ca.defaults, {"x": 1})
    assert kwargs == {"x": 1}  # left out, so Python applies the defaults
    assert ca.defaults.fn(**kwargs) == 1
    bound = __import__("inspect").signature(ca.defaults.fn).bind(**kwargs)
    bound.apply_defaults()
    assert bound.arguments == {"x": 1, "y": "why", "z": None}


def test_missing_required_names_the_parameter() -> None:
    with pytest.raises(DeserializationError, match=r"defaults.*missing required argument 'x'") as e:
        decode(ca.defaults, {"y": "only"})
    assert e.value.details["parameter"] == "x"


@pytest.mark.parametrize(
    ("fn", "values", "param", "hint_text"),
    [
        (ca.defaults, {"x": "abc"}, "x", "int"),
        (ca.scalars, {"s": 5, "i": 1, "f": 1.0, "b": True, "n": None}, "s", "str"),
        (ca.scalars, {"s": "", "i": 1, "f": "fast", "b": True, "n": None}, "f", "float"),
        (ca.scalars, {"s": "", "i": 1, "f": 1.0, "b": True, "n": 3}, "n", "None"),
        (ca.anything, {"a": 1, "u": [1]}, "u", "str | int"),
        (ca.person, {"p": {"name": "Ada"}}, "p", "Person"),
    ],
)
def test_wrong_type_names_parameter_and_hint(
    fn: Any, values: dict[str, Any], param: str, hint_text: str
) -> None:
    with pytest.raises(DeserializationError) as e:
        decode(fn, values)
    msg = e.value.message
    assert f"parameter '{param}'" in msg
    assert f"type hint {hint_text}" in msg
    assert e.value.details["parameter"] == param


@pytest.mark.parametrize(
    ("fn", "values", "hint_text"),
    [
        (ca.containers, {"xs": ["a"], "d": {}, "st": [], "tp": [1, "a"]}, "list[int]"),
        (ca.nested, {"orders": {"n": [{"sku": 1}]}}, "dict[str, list["),
    ],
)
def test_wrong_type_names_generic_hint_in_full(
    fn: Any, values: dict[str, Any], hint_text: str
) -> None:
    with pytest.raises(DeserializationError) as e:
        decode(fn, values)
    assert f"type hint {hint_text}" in e.value.message


def test_wrong_nested_field_is_located() -> None:
    data = {"name": "Ada", "age": 36, "address": {"street": "Main", "zip_code": 1}}
    with pytest.raises(DeserializationError, match=r"address\.zip_code"):
        decode(ca.person, {"p": data})


def test_file_parameter_takes_the_file_as_is() -> None:
    f = File(b"\x00\x01", "application/pdf")
    kwargs = decode(ca.file_in_out, {"doc": f, "note": "n"})
    assert kwargs["doc"] is f and kwargs["note"] == "n"


def test_file_parameter_rejects_json() -> None:
    with pytest.raises(DeserializationError, match=r"parameter 'doc' expects a file") as e:
        decode(ca.file_in_out, {"doc": "not a file"})
    assert e.value.details["parameter"] == "doc"


# -- encode_output -----------------------------------------------------------------------------


def test_encode_scalars_and_containers() -> None:
    assert encode_json(ca.returns_int, 5) == 5
    assert encode_json(ca.returns_none, None) is None
    assert encode_json(ca.returns_set, {3}) == [3]
    assert encode_json(ca.containers, [[1], {"a": 1}, {"x"}, (1, "y")]) == [
        [1],
        {"a": 1},
        ["x"],
        [1, "y"],
    ]


def test_encode_any_and_unhinted() -> None:
    value = {"a": [1, 2.5, None, True, "s"]}
    assert encode_json(ca.anything, value) == value
    assert encode_json(ca.unhinted, value) == value


def test_encode_models() -> None:
    p = ca.Person(name="Ada", age=36, address=ca.Address(street="Main", zip_code="01"))
    assert encode_json(ca.person, p) == {
        "name": "Ada",
        "age": 36,
        "address": {"street": "Main", "zip_code": "01"},
        "tags": [],
    }
    orders = {"n": [ca.Line(sku="a", qty=1)]}
    assert encode_json(ca.nested, orders) == {"n": [{"sku": "a", "qty": 1}]}


def test_encode_file_return() -> None:
    body, content_type = encode_output(sig(ca.file_in_out), File(b"%PDF", "application/pdf"))
    assert (body, content_type) == (b"%PDF", "application/pdf")


def test_encode_file_return_hint_rejects_other_values() -> None:
    with pytest.raises(SerializationError, match=r"file_in_out.*File.*bytes"):
        encode_output(sig(ca.file_in_out), b"raw bytes")


def test_encode_unserializable_value_raises() -> None:
    with pytest.raises(SerializationError, match=r"unhinted.*not JSON-serializable"):
        encode_output(sig(ca.unhinted), object())


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(
    ("fn", "value"),
    [(ca.returns_int, "not an int"), (ca.person, {"name": "no model"}), (ca.returns_none, 3)],
)
def test_encode_value_not_matching_return_hint(fn: Any, value: Any) -> None:
    with pytest.raises(SerializationError, match=r"does not match its type hint"):
        encode_output(sig(fn), value)


# -- pickling between functions ----------------------------------------------------------------


def test_dumps_loads_round_trip() -> None:
    value = {"f": File(b"x"), "t": (1, {2})}
    assert loads(dumps(value, "v"), "v") == value


def test_dumps_unpicklable_names_what() -> None:
    import threading

    with pytest.raises(SerializationError, match="output of f could not be pickled"):
        dumps(threading.Lock(), "output of f")


def test_loads_garbage_raises() -> None:
    with pytest.raises(DeserializationError, match="state 'k' could not be unpickled"):
        loads(b"not a pickle", "state 'k'")


# -- File ----------------------------------------------------------------------------------------


def test_file_normalises_content() -> None:
    assert File(bytearray(b"ab")).content == b"ab"
    assert File(memoryview(b"cd")).content == b"cd"
    assert File(b"").content_type == "application/octet-stream"
    with pytest.raises(TypeError):
        File("text")  # type: ignore[arg-type]


# -- Retries.delay ---------------------------------------------------------------------------------


def test_retries_defaults() -> None:
    r = Retries()
    assert (r.max_retries, r.initial_delay, r.max_delay, r.delay_multiplier) == (0, 1.0, 60.0, 2.0)


def test_retry_delay_backoff_capped() -> None:
    r = Retries(max_retries=10, initial_delay=0.5, max_delay=5.0, delay_multiplier=3.0)
    assert [r.delay(n) for n in range(1, 6)] == [0.5, 1.5, 4.5, 5.0, 5.0]
    assert r.delay(10) == 5.0


def test_retry_delay_default_doubling() -> None:
    r = Retries(max_retries=3)
    assert [r.delay(n) for n in (1, 2, 3, 7, 8)] == [1.0, 2.0, 4.0, 60.0, 60.0]
    assert r.delay(0) == 1.0  # no negative exponents
    assert all(isinstance(r.delay(n), float) for n in range(1, 4))


def test_retry_delay_constant_and_zero() -> None:
    assert Retries(max_retries=2, initial_delay=2, delay_multiplier=1).delay(5) == 2.0
    assert Retries(max_retries=2, initial_delay=0).delay(3) == 0.0
    assert Retries(max_retries=2, initial_delay=10, max_delay=3).delay(1) == 3.0


def test_retries_dict_round_trip() -> None:
    r = Retries(max_retries=4, initial_delay=0.1, max_delay=2, delay_multiplier=1.5)
    assert r.to_dict() == {
        "max_retries": 4,
        "initial_delay": 0.1,
        "max_delay": 2,
        "delay_multiplier": 1.5,
    }
    assert Retries.from_dict(r.to_dict()) == r
