"""An async function that blocks on a map of async functions (run in a subprocess)."""

from cove import application, function


@function()
async def adouble(x: int) -> int:
    return 2 * x


@application()
@function()
async def async_blocking_map(xs: list[int]) -> list[int]:
    # The blocking wait holds up this coroutine until every item is done.
    result: list[int] = adouble.future.map(xs).result()
    return result
