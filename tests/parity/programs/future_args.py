"""Futures passed where values go: as call arguments, as map's and reduce's collection."""

from tensorlake.applications import application, function


@function()
def add(a: int, b: int) -> int:
    return a + b


@function()
def to_str(x: int) -> str:
    return str(x)


@function()
def to_int(s: str) -> int:
    return int(s) * 10


@function()
def total(values: list) -> int:
    return sum(values)


@application()
@function()
def future_arguments(x: int) -> int:
    return add(add.future(x, 1), add.future(x, 2))


@application()
@function()
def future_kwarg(x: int) -> int:
    return add(a=add.future(x, 1), b=5)


@application()
@function()
def future_collection(n: int) -> list[int]:
    return to_int.future.map(to_str.future.map(list(range(n))))


@application()
@function()
def future_collection_sync(n: int) -> list[int]:
    return list(to_int.map(to_str.future.map(list(range(n)))))


@application()
@function()
def future_reduce(n: int) -> int:
    return add.reduce(to_int.future.map(to_str.future.map(list(range(n)))), 0)


@application()
@function()
def future_items(x: int) -> list[int]:
    return list(to_int.map([to_str.future(x), to_str.future(x + 1)]))


CASES = [
    {"name": "future_as_arguments", "app": "future_arguments", "args": [1]},
    {"name": "future_as_kwarg", "app": "future_kwarg", "args": [1]},
    {"name": "future_map_of_future_map", "app": "future_collection", "args": [3]},
    {"name": "sync_map_of_future_map", "app": "future_collection_sync", "args": [3]},
    {"name": "reduce_of_future_map", "app": "future_reduce", "args": [4]},
    {"name": "futures_as_map_items", "app": "future_items", "args": [2]},
]
