"""Applications covering the JSON edge: arguments, hints, files, defaults."""

from typing import Any

from pydantic import BaseModel

import cove
from cove import File, application, function


class Item(BaseModel):
    name: str
    price: float


class Order(BaseModel):
    customer: str
    items: list[Item]


class Receipt(BaseModel):
    customer: str
    total: float
    names: list[str]


@application()
@function()
def hello() -> str:
    return "hello"


@application()
@function()
def greet(name: str) -> str:
    return f"Hello, {name}!"


@application()
@function()
def several(a: int, b: str, c: list[float], d: bool = True) -> dict[str, Any]:
    return {"a": a, "b": b, "sum": sum(c), "d": d}


@application()
@function()
def checkout(order: Order) -> Receipt:
    return Receipt(
        customer=order.customer,
        total=sum(i.price for i in order.items),
        names=[i.name for i in order.items],
    )


@application()
@function()
def kind_of(x: str | int) -> str:
    return type(x).__name__


@application()
@function()
def echo_any(x: Any) -> Any:
    return x


@application()
@function()
def echo_unhinted(x):  # type: ignore[no-untyped-def]
    return x


@application()
@function()
def shout_file(doc: File) -> File:
    return File(doc.content.upper(), "text/plain")


@function()
def file_size(doc: File) -> int:
    return len(doc.content)


@application()
@function()
def size_via_child(doc: File) -> int:
    return file_size(doc)


@function()
def double(x: int) -> int:
    return x * 2


@function()
def add(a: int, b: int) -> int:
    return a + b


@application()
@function()
def double_then_add(x: int) -> int:
    return add(double(x), 1)


@function()
def slow_square(x: int) -> int:
    import time

    # Later items finish first, so completion order is the reverse of item order.
    time.sleep(0.01 * (5 - x))
    return x * x


@application()
@function()
def squares(xs: list[int]) -> list[int]:
    return slow_square.map(xs)


@application()
@function()
def total(xs: list[int]) -> int:
    return add.reduce(xs)


@application()
@function()
def total_from(xs: list[int], start: int) -> int:
    return add.reduce(xs, start)


@function()
def concat(acc: str, item: str) -> str:
    return acc + item


@application()
@function()
def concat_all(xs: list[str]) -> str:
    # Reduce order matters for a non-commutative fold.
    return concat.reduce(xs, ">")


@application()
@function()
def map_of_futures(x: int) -> list[int]:
    # Map items may be futures: they are resolved first.
    return double.map([double.future(x), x + 1])


@application()
@function()
def tail(x: int) -> int:
    # An unstarted future returned from a function is a tail call.
    return double.future(x)


@application()
@function()
def started_tail(x: int) -> int:
    # A started future cannot be a tail call: the function fails with SDKUsageError.
    return double.future(x).run()


@application()
@function()
def request_id_of() -> str:
    return cove.RequestContext.get().request_id


@application()
@function()
def wrong_return() -> int:
    return "not an int"  # type: ignore[return-value]


@application()
@function()
def with_default(x: int = 7) -> int:
    return x


@function()
def mutate(d: dict[str, int]) -> int:
    d["child"] = 1
    return len(d)


@application()
@function()
def values_are_copied() -> dict[str, Any]:
    # Arguments and outputs cross between functions pickled, as between containers.
    d = {"a": 1}
    n = mutate(d)
    return {"d": d, "n": n}
