"""Functions used outside any request (plain Python)."""

from cove import cls, function

INITS = {"Counter": 0}


@function()
def triple(x: int) -> int:
    return x * 3


@function()
def plus(a: int, b: int) -> int:
    return a + b


@function()
async def async_triple(x: int) -> int:
    return x * 3


@cls()
class Counter:
    def __init__(self) -> None:
        INITS["Counter"] += 1
        self.base = 1000

    @function()
    def bump(self, x: int) -> int:
        return self.base + x

    @function()
    def bump_twice(self, x: int) -> int:
        return self.base + 2 * x
