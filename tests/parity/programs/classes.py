"""``@cls()``: __init__ once per container, methods as functions, sync and async."""

from tensorlake.applications import application, cls, function


@cls()
class Scaler:
    def __init__(self) -> None:
        self.factor = 3

    @function()
    def scale(self, x: int) -> int:
        return x * self.factor

    @function()
    async def ascale(self, x: int) -> int:
        return x * self.factor + 1


@application()
@function()
def use_class(x: int) -> list[int]:
    scaler = Scaler()
    return [scaler.scale(x), *scaler.scale.map([1, 2])]


@application()
@function()
async def use_class_async(x: int) -> int:
    return await Scaler().ascale(x)


@application()
@function()
def class_future(x: int) -> int:
    return Scaler().scale.future(x).result()


CASES = [
    {"name": "method_call_and_map", "app": "use_class", "args": [2]},
    {"name": "async_method", "app": "use_class_async", "args": [2]},
    {"name": "method_future", "app": "class_future", "args": [5]},
]
