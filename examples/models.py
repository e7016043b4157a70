"""Typed JSON at the edge: Pydantic models, a union, and ``Any``.

Application inputs are validated against their type hints and outputs are serialized
by them. A Pydantic model (with nested models) is sent as a JSON object::

    curl -F code=@examples/models.py http://127.0.0.1:8900/applications
    curl -X POST 'http://127.0.0.1:8900/applications/customer_profile?wait=30' \\
         -H 'Content-Type: application/json' \\
         -d '{"name": "ada lovelace", "age": 36, "email": "ADA@Example.org",
              "addresses": [{"street": "12 St James Sq", "city": "London", "country": "UK"}],
              "orders": [{"sku": "engine", "quantity": 1, "unit_price": 1843.5}]}'
    # {"display_name":"Ada Lovelace","email":"ada@example.org","is_adult":true,
    #  "primary_city":"London","address_count":1,
    #  "spending":{"orders":1,"items":1,"total":1843.5},"tier":{"name":"gold","discount":0.1}}

A union hint (``str | int``) accepts either JSON type; the function sees which one it got::

    curl -X POST 'http://127.0.0.1:8900/applications/describe_value?wait=30' \\
         -H 'Content-Type: application/json' -d '42'
    # "int: 42 (even)"

``Any`` takes and returns any JSON value (object, array, string, number, boolean, null)::

    curl -X POST 'http://127.0.0.1:8900/applications/inspect_json?wait=30' \\
         -H 'Content-Type: application/json' -d '{"a": [1, 2]}'
    # {"type":"dict","size":1,"value":{"a":[1,2]}}

Invalid input (e.g. ``"age": "old"``) is rejected with HTTP 400 before any code runs.
"""

from typing import Any

from pydantic import BaseModel, Field

from cove import application, function


class Address(BaseModel):
    street: str
    city: str
    country: str


class Order(BaseModel):
    sku: str
    quantity: int = Field(ge=1)
    unit_price: float = Field(ge=0)


class Customer(BaseModel):
    name: str
    age: int = Field(ge=0)
    email: str
    addresses: list[Address] = []
    orders: list[Order] = []


class Spending(BaseModel):
    orders: int
    items: int
    total: float


class Tier(BaseModel):
    name: str
    discount: float


class Profile(BaseModel):
    display_name: str
    email: str
    is_adult: bool
    primary_city: str | None
    address_count: int
    spending: Spending
    tier: Tier


TIERS = ((1000.0, Tier(name="gold", discount=0.1)), (100.0, Tier(name="silver", discount=0.05)))


@function(description="Totals a customer's orders.")
def total_spending(orders: list[Order]) -> Spending:
    # Models pass between functions as they are (pickled), no JSON involved.
    return Spending(
        orders=len(orders),
        items=sum(o.quantity for o in orders),
        total=round(sum(o.quantity * o.unit_price for o in orders), 2),
    )


@application()
@function(description="Builds a customer profile from a customer record.")
def customer_profile(customer: Customer) -> Profile:
    spending = total_spending(customer.orders)
    basic = Tier(name="basic", discount=0)
    tier = next((t for floor, t in TIERS if spending.total >= floor), basic)
    return Profile(
        display_name=" ".join(part.capitalize() for part in customer.name.split()),
        email=customer.email.lower(),
        is_adult=customer.age >= 18,
        primary_city=customer.addresses[0].city if customer.addresses else None,
        address_count=len(customer.addresses),
        spending=spending,
        tier=tier,
    )


@application()
@function(description="Says whether it got a string or an integer.")
def describe_value(value: str | int) -> str:
    if isinstance(value, int):
        return f"int: {value} ({'even' if value % 2 == 0 else 'odd'})"
    return f"str: {value!r} ({len(value)} characters)"


@application()
@function(description="Reports the Python type any JSON value arrives as.")
def inspect_json(value: Any) -> Any:
    size = len(value) if isinstance(value, str | list | dict) else None
    return {"type": type(value).__name__, "size": size, "value": value}


if __name__ == "__main__":
    from cove import run_local_application

    ada = Customer(name="ada lovelace", age=36, email="ADA@Example.org")
    print(run_local_application(customer_profile, ada).output())
    print(run_local_application(describe_value, 42).output())
    print(run_local_application(inspect_json, {"a": [1, 2]}).output())
