"""Map, reduce, futures and tail calls, sync: the everyday programs."""

from tensorlake.applications import RETURN_WHEN, Future, application, function


@function()
def square(x: int) -> int:
    return x * x


@function()
def add(a: int, b: int) -> int:
    return a + b


@function()
def label(x: int) -> str:
    return f"<{x}>"


@application()
@function()
def map_squares(n: int) -> list[int]:
    return list(square.map(list(range(n))))


@application()
@function()
def reduce_sum(n: int) -> int:
    return add.reduce(list(range(n)), 100)


@application()
@function()
def reduce_no_initial(n: int) -> int:
    return add.reduce(list(range(1, n + 1)))


@application()
@function()
def futures_run_result(x: int) -> list[int]:
    first = square.future(x).run()
    second = add.future(x, 1).run()
    return [first.result(), second.result()]


@application()
@function()
def futures_wait(x: int) -> dict:
    futures = [square.future(x), square.future(x + 1)]
    done, not_done = Future.wait(futures, return_when=RETURN_WHEN.ALL_COMPLETED)
    values = sorted(f.result() for f in done)
    return {"done": len(done), "not_done": len(not_done), "values": values}


@application()
@function()
def tail_call(x: int) -> str:
    return label.future(x)


@application()
@function()
def tail_call_map(n: int) -> list[int]:
    return square.future.map(list(range(n)))


@application()
@function()
def chained(x: int) -> str:
    return label(add(square(x), 1))


@application()
@function()
def structured(payload: dict) -> dict:
    return {"keys": sorted(payload), "count": len(payload), "nested": payload.get("n")}


CASES = [
    {"name": "map", "app": "map_squares", "args": [4]},
    {"name": "map_empty", "app": "map_squares", "args": [0]},
    {"name": "reduce_initial", "app": "reduce_sum", "args": [4]},
    {"name": "reduce_no_initial", "app": "reduce_no_initial", "args": [4]},
    {"name": "future_run_result", "app": "futures_run_result", "args": [3]},
    {"name": "future_wait", "app": "futures_wait", "args": [2]},
    {"name": "tail_call", "app": "tail_call", "args": [7]},
    {"name": "tail_call_map", "app": "tail_call_map", "args": [3]},
    {"name": "chained_calls", "app": "chained", "args": [3]},
    {"name": "json_dict", "app": "structured", "args": [{"b": 1, "a": [1, 2], "n": {"x": None}}]},
]
