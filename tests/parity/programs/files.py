"""File in and out: an application's File parameter and return, Files between functions."""

from tensorlake.applications import File, application, function


@function()
def upper(f: File) -> File:
    return File(f.content.upper(), f.content_type)


@function()
def make(text: str) -> File:
    return File(text.encode(), "text/x-made")


@application()
@function()
def file_roundtrip(f: File) -> File:
    return upper(f)


@application()
@function()
def file_between_functions(text: str) -> str:
    made = make(text)
    return f"{made.content.decode()}|{made.content_type}"


@application()
@function()
def file_out(text: str) -> File:
    return make(text)


@application()
@function()
def file_and_value(f: File, suffix: str) -> dict:
    return {"content": f.content.decode() + suffix, "type": f.content_type}


@application()
@function()
def file_tail_call(f: File) -> File:
    return upper.future(f)


CASES = [
    {"name": "file_in_file_out", "app": "file_roundtrip", "args": [File(b"abc", "text/plain")]},
    {"name": "file_between_functions", "app": "file_between_functions", "args": ["hi"]},
    {"name": "file_output", "app": "file_out", "args": ["out"]},
    {
        "name": "file_and_value",
        "app": "file_and_value",
        "args": [File(b"{}", "application/json"), "!"],
    },
    {"name": "file_tail_call", "app": "file_tail_call", "args": [File(b"x", "text/plain")]},
]
