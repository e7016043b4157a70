"""@cls classes: one-time initialisation."""

import threading

from cove import application, cls, function

INITS = {"Model": 0, "PlainModel": 0}
_lock = threading.Lock()


@cls()
class Model:
    def __init__(self) -> None:
        with _lock:
            INITS["Model"] += 1
        self.weights = 10

    @function()
    def predict(self, x: int) -> int:
        return x * self.weights


@application()
@function()
def predict_all(xs: list[int]) -> list[int]:
    model = Model()
    first = model.predict(xs[0])
    return [first, *Model().predict.map(xs[1:])]


@cls()
class PlainModel:
    """Only used outside requests (plain Python)."""

    def __init__(self) -> None:
        INITS["PlainModel"] += 1
        self.bias = 100

    @function()
    def infer(self, x: int) -> int:
        return x + self.bias

    def helper(self) -> str:
        return "not a cove function"
