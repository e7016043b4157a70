"""How applications are called: extra arguments, by name, bad input, hints, non-applications."""

from pydantic import BaseModel
from tensorlake.applications import File, application, function


class Point(BaseModel):
    x: int
    y: int = 0


@function()
def helper(x: int) -> int:
    return x


@application()
@function()
def one_arg(x: int) -> int:
    return x + 1


@application()
@function()
def no_args() -> str:
    return "none"


@application()
@function()
def two_args(a: int, b: str = "b") -> str:
    return f"{a}{b}"


@application()
@function()
def model_from_dict(x: int) -> Point:
    return {"x": x, "y": 2}


@application()
@function()
def model_in(p: Point) -> dict:
    return {"x": p.x, "y": p.y, "type": type(p).__name__}


@application()
@function()
def typed_out(x: int) -> tuple[int, str]:
    return (x, "s")


@application()
@function()
def file_name(f: File) -> str:
    return f.content.decode() + "|" + f.content_type


CASES = [
    {"name": "extra_positional_ignored", "app": "one_arg", "args": [1, 2, 3]},
    {"name": "no_args_extra_positional", "app": "no_args", "args": [1]},
    {"name": "kwargs", "app": "two_args", "kwargs": {"a": 1, "b": "x"}},
    {"name": "default_parameter", "app": "two_args", "args": [5]},
    {"name": "by_name_positional", "app": "one_arg", "by_name": True, "args": [41]},
    {"name": "by_name_keyword", "app": "one_arg", "by_name": True, "kwargs": {"x": 41}},
    {"name": "by_unknown_name", "app": "no_such_app", "by_name": True, "args": [1]},
    {"name": "not_an_application", "app": "helper", "args": [1], "str": True},
    {"name": "unencodable_input", "app": "one_arg", "args": [object()]},
    {"name": "model_return_from_dict", "app": "model_from_dict", "args": [1]},
    {"name": "model_input_from_dict", "app": "model_in", "args": [{"x": 3}]},
    {"name": "model_input_from_model", "app": "model_in", "args": [Point(x=4, y=5)]},
    {"name": "tuple_output", "app": "typed_out", "args": [1]},
    {"name": "file_input", "app": "file_name", "args": [File(b"abc", "text/plain")]},
]
