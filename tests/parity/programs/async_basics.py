"""Map, reduce, futures and tail calls from ``async def`` functions."""

import asyncio

from tensorlake.applications import application, function


@function()
async def asquare(x: int) -> int:
    await asyncio.sleep(0)
    return x * x


@function()
async def aadd(a: int, b: int) -> int:
    return a + b


@function()
def square(x: int) -> int:
    return x * x


@application()
@function()
async def await_call(x: int) -> int:
    return await asquare(x)


@application()
@function()
async def await_sync_future(x: int) -> int:
    return await square.future(x)


@application()
@function()
async def await_map(n: int) -> list[int]:
    return list(await asquare.map(list(range(n))))


@application()
@function()
async def await_reduce(n: int) -> int:
    return await aadd.reduce(list(range(n)), 10)


@application()
@function()
async def gather_calls(n: int) -> list[int]:
    return list(await asyncio.gather(*(asquare(i) for i in range(n))))


@application()
@function()
async def create_task_call(x: int) -> int:
    task = asyncio.create_task(asquare(x))
    return await task


@application()
@function()
async def future_coroutine(x: int) -> int:
    return await square.future(x).coroutine()


@application()
@function()
async def async_tail_call(x: int) -> int:
    return square.future(x)


CASES = [
    {"name": "await_call", "app": "await_call", "args": [5]},
    {"name": "await_sync_future", "app": "await_sync_future", "args": [5]},
    {"name": "await_map", "app": "await_map", "args": [4]},
    {"name": "await_reduce", "app": "await_reduce", "args": [4]},
    {"name": "gather", "app": "gather_calls", "args": [3]},
    {"name": "create_task", "app": "create_task_call", "args": [6]},
    {"name": "future_coroutine", "app": "future_coroutine", "args": [4]},
    {"name": "async_tail_call", "app": "async_tail_call", "args": [9]},
]
