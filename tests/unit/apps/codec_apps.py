"""Application signatures for the codec tests (hints resolved at module level)."""

from typing import Any, Optional

from pydantic import BaseModel

from cove import File, application, function


class Address(BaseModel):
    street: str
    zip_code: str


class Person(BaseModel):
    name: str
    age: int
    address: Address
    tags: list[str] = []


class Line(BaseModel):
    sku: str
    qty: int


@application()
@function()
def scalars(s: str, i: int, f: float, b: bool, n: None) -> str:
    return s


@application()
@function()
def containers(xs: list[int], d: dict[str, int], st: set[str], tp: tuple[int, str]) -> list[Any]:
    return [xs, d, st, tp]


@application()
@function()
def anything(a: Any, u: str | int, opt: Optional[int] = None) -> Any:  # noqa: UP045
    return a


@application()
@function()
def unhinted(a, b=3):  # type: ignore[no-untyped-def]
    return a


@application()
@function()
def person(p: Person) -> Person:
    return p


@application()
@function()
def nested(orders: dict[str, list[Line]]) -> dict[str, list[Line]]:
    return orders


@application()
@function()
def defaults(x: int, y: str = "why", z: list[int] | None = None) -> int:
    return x


@application()
@function()
def file_in_out(doc: File, note: str = "") -> File:
    return doc


@application()
@function()
def returns_int() -> int:
    return 1


@application()
@function()
def returns_set() -> set[int]:
    return {1}


@application()
@function()
def returns_none() -> None:
    return None
