"""async def functions."""

import asyncio

from cove import application, function


@function()
async def async_double(x: int) -> int:
    await asyncio.sleep(0.01)
    return x * 2


@function()
def sync_inc(x: int) -> int:
    return x + 1


@application()
@function()
async def async_app(x: int) -> int:
    doubled = await async_double(x)
    both = await asyncio.gather(async_double.future(1), async_double.future(2))
    mapped = await async_double.future.map([3, 4])
    return doubled + sum(both) + sum(mapped)


@application()
@function()
def sync_app_calls_async(x: int) -> int:
    # Calling an async function returns a coroutine, as in the Tensorlake SDK.
    return asyncio.run(async_double(x)) + sync_inc(x)
